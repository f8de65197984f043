"""The container image (Containerfile) built with Debian's podman and run as a site would run it.

Marked ``cluster``: this is the root-and-Debian tier (podman, runc and debootstrap
are apt-get installed by the test), skipped elsewhere with that tier's one line
and never skipped with ``CI=true``. The image is built once per session from
this checkout; the build time is logged (``[dssr-cluster ...] container image built``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator, NoReturn

import pytest

from tests.cluster import log
from tests.cluster.fixtures import Cluster, require_debian_root
from tests.deploy.podman import IMAGE, IMAGE_UID, PACKAGES, Container, Podman
from tests.helpers import SUCCESS_MARKER, legacy_template, submit_args
from tests.server.live import Answer, Client, free_port, wait_for
from tests.slurm.cluster_support import mapping_file, slurm_env

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with the image of this checkout built (once per module; removed afterwards)."""
    require_debian_root(*PACKAGES)
    podman = Podman()
    try:
        base = podman.import_base()
        build = podman.build(REPO, tmp_path_factory.mktemp("image") / "build.log")
        log(f"container image built in {build:.1f}s (base root imported in {base:.1f}s)")
        yield podman
    finally:
        podman.clean()


@pytest.fixture
def container(podman: Podman) -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for c in started:
        c.remove()


def answering(client: Client, path: str) -> Answer | None:
    try:
        return client.get(path)
    except OSError:  # not listening yet
        return None


def start(podman: Podman, started: list[Container], url: str, options: list[str], env: dict[str, str]) -> Client:
    c = Container(podman, options, env)
    started.append(c)
    client = Client(url)
    try:
        wait_for(lambda: answering(client, "/live") or (not c.running() and _exited(c)), timeout=60, interval=0.5)
    except AssertionError:
        raise AssertionError(f"the container did not answer /live:\n{c.logs()}") from None
    return client


def _exited(c: Container) -> NoReturn:
    raise AssertionError(f"the container exited:\n{c.logs()}")


def probe(client: Client, path: str) -> Answer:
    """``path`` once it answers 200 (a readiness probe retries the same way)."""
    kubelet = Client(client.url)  # no token
    return wait_for(lambda: (a := kubelet.get(path)).status == 200 and a, timeout=30, interval=0.5)


def run_job(client: Client, name: str, command: str, bearer: str = "") -> tuple[int, str]:
    """Submit through the legacy API as the upstream does; (rc, output) once it has ended."""
    args = submit_args(name, 1, legacy_template(command), key="shell", bearer=bearer)
    answer = client.post("/submit", args)
    assert answer.status == 200, answer.text
    ref = {"name": name, "number": 1, "jobid": answer.json()[0]}

    def ended() -> Answer | None:
        a = client.post("/exitstatus", ref)
        return a if a.status == 200 else None

    rc, _elapsed, (output, _line) = wait_for(ended, timeout=90, interval=0.5).json()
    return rc, output


def test_the_image_answers_live_and_runs_a_job_on_the_local_connector_as_its_unprivileged_user(
    podman: Podman, container: list[Container]
) -> None:
    port, token = free_port(), uuid.uuid4().hex
    client = start(
        podman,
        container,
        f"http://127.0.0.1:{port}",
        ["--publish", f"127.0.0.1:{port}:5000"],
        {
            "JARVICE_BAREMETAL_CONNECTOR": "local",
            "JARVICE_BAREMETAL_EXECUTOR": "shell",
            "JARVICE_DSSR_AUTH_TOKEN": token,
        },
    )
    live = client.get("/live")
    assert live.status == 200 and live.json() == {"status": "OK"}
    assert client.get("/running").status == 401  # the token set in the container is enforced
    assert probe(client, "/ready").json()["status"] == "OK"  # as a kubelet asks it: without the token
    client.headers["Authorization"] = f"Bearer {token}"
    rc, output = run_job(client, f"jarvice-ctr-{uuid.uuid4().hex[:6]}", "echo uid=$(id -u) hello from the image")
    assert rc == 0, output
    assert f"uid={IMAGE_UID} hello from the image" in output and SUCCESS_MARKER in output
    podman("stop", "--time", "10", container[0].name)  # SIGTERM (the image's STOPSIGNAL)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", container[0].name).stdout.strip() == "0"


def test_the_image_without_settings_stops_naming_the_cluster_address_it_needs(podman: Podman) -> None:
    cp = podman("run", "--rm", *podman.ulimits(), IMAGE, check=False, timeout=60)
    assert cp.returncode == 2, cp.stdout + cp.stderr
    assert "JARVICE_SLURM_CLUSTER_ADDR is not set" in cp.stderr


def test_the_image_runs_slurm_jobs_with_the_key_and_the_mapping_file_mounted_as_secrets(
    podman: Podman, container: list[Container], slurm_cluster: Cluster, tmp_path: Path
) -> None:
    secrets = {
        "ssh-privatekey": slurm_cluster.jarvice_key,
        "users-id-mapping": mapping_file(slurm_cluster, tmp_path / "mapping.yaml"),
    }
    names = {key: f"dssr-test-{key}-{uuid.uuid4().hex[:6]}" for key in secrets}
    for key, path in secrets.items():
        podman("secret", "create", names[key], str(path))
    try:
        port = free_port()
        env = slurm_env(slurm_cluster, tmp_path)
        del env["JARVICE_SLURM_SSH_PKEY"], env["JARVICE_USERS_ID_MAPPING_FILE"]  # the image's default path is used
        env.update(
            {
                "JARVICE_SLURM_SSH_PKEY_FILE": "/run/secrets/ssh-privatekey",
                "JARVICE_SLURM_SSH_KNOWN_HOSTS": "/etc/jarvice-dssr/known_hosts",
                "WAITRESS_BIND_ADDRESS": "127.0.0.1",
                "WAITRESS_PORT": str(port),
            }
        )
        # the test cluster's sshd listens on the host's loopback: the container shares the host's network
        options = [
            "--network",
            "host",
            # as examples/kubernetes/deployment.yaml runs it: no capabilities, no privilege gain
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--secret",
            f"{names['ssh-privatekey']},type=mount,target=/run/secrets/ssh-privatekey,uid={IMAGE_UID},mode=0400",
            "--secret",
            f"{names['users-id-mapping']},type=mount,"
            f"target=/etc/jarvice-dssr/users_id_mapping_configuration.yaml,uid={IMAGE_UID},mode=0400",
            "--volume",
            f"{slurm_cluster.known_hosts}:/etc/jarvice-dssr/known_hosts:ro",
        ]
        client = start(podman, container, f"http://127.0.0.1:{port}", options, env)
        gc = client.get("/gc")
        assert gc.status == 200 and gc.json() == {"status": "OK"}, gc.text  # the service key logged in
        assert probe(client, "/ready").json()["status"] == "OK"  # the readiness probe of examples/kubernetes
        kirby = slurm_cluster.users["kirby"]
        bearer = slurm_cluster.idp.mint(email=kirby.email, audience="jarvice")
        rc, output = run_job(
            client, f"jarvice-ctr-{uuid.uuid4().hex[:6]}", "echo user=$(id -un) on $(hostname)", bearer
        )
        assert rc == 0, output
        assert "user=kirby on node" in output  # mapped through the mounted mapping file, run by Slurm
        key_body = slurm_cluster.jarvice_key.read_text().splitlines()[1]
        assert key_body not in container[0].logs()
    finally:
        for name in names.values():
            podman("secret", "rm", name, check=False)
