"""The Singularity executor on the real Apptainer 1.4 (Slurm 26.05 test cluster), through the legacy HTTP API.

A dssr-server (``dssr_server`` under waitress) runs against the 26.05 cluster of
tests/cluster/slurm2605.py. Jobs pull busybox images from the cluster's own OCI
registries (a public one and one that wants a login) and run in real
containers, one per node, as the mapped users. Nothing here goes through the
Apptainer stand-in.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, Settings
from dssr_core.testing.contract import unique_name, wait_for
from dssr_singularity import SingularityExecutor
from tests.cluster import Cluster
from tests.helpers import legacy_template, submit_args
from tests.slurm.cluster_support import Server, serve, slurm_env
from tests.slurm.test_http_cluster import Client, listed

pytestmark = pytest.mark.cluster

#: inside an unprivileged Apptainer container the user namespace maps only the user's own uid
CONTAINER_PROBE = 'echo "rank $PROCESS_PROCID on $(hostname): $(cat /etc/dssr-image) as $(id -u) map $(cat /proc/self/uid_map | tr -s " " | sed "s/^ //")"'


@pytest.fixture(scope="module")
def cluster(slurm2605_cluster: Cluster) -> Cluster:
    return slurm2605_cluster


@pytest.fixture(scope="module")
def site(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server's variables, as a site sets them for this cluster."""
    tmp = tmp_path_factory.mktemp("apptainer-http")
    user, password = cluster.registry_credentials
    auths = tmp / "auths.json"
    login = base64.b64encode(f"{user}:{password}".encode()).decode()
    auths.write_text(json.dumps({"auths": {cluster.private_registry: {"auth": login}}}))
    return slurm_env(
        cluster,
        tmp,
        JARVICE_BAREMETAL_EXECUTOR="singularity",
        JARVICE_SINGULARITY_INSECURE_REGISTRIES=f"{cluster.registry},{cluster.private_registry}",
        JARVICE_SINGULARITY_REGISTRY_AUTHS=str(auths),
        JARVICE_SYSTEM_REGISTRY=cluster.registry,
        JARVICE_SYSTEM_REPO_BASE="dssr",
        JARVICE_IMAGES_TAG="1",
        JARVICE_SINGULARITY_OVERLAY_SIZE="64",
    )


@pytest.fixture(scope="module")
def server(site: dict[str, str]) -> Iterator[Server]:
    yield from serve(site)


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url)


def native(
    server: Server | Downstream,
    cluster: Cluster,
    image: str,
    command: str,
    *,
    user: str = "kirby",
    nodes: int = 2,
    **kw: Any,
) -> dict[str, Any]:
    """A native job (image + command) submitted to the server's downstream (or to ``server`` when it is a
    downstream on the server's connector); its legacy reference."""
    spec = JobSpec(
        name=unique_name("app"),
        number=7,
        nodes=nodes,
        image=image,
        command=command,
        identity=Identity(email=cluster.users[user].email, username=user),
        exclusive=False,
        **kw,
    )
    downstream = server if isinstance(server, Downstream) else server.downstream
    submission = downstream.submit(spec)
    return {
        "name": spec.name,
        "number": 7,
        "jobid": submission.jobid,
        "script": submission.script,
    }


def ref(job: dict[str, Any]) -> dict[str, Any]:
    return {k: job[k] for k in ("name", "number", "jobid")}


def exit_status(client: Client, job: dict[str, Any], timeout: float = 120) -> tuple[int, str, str]:
    """(rc, output, last line) from ``/exitstatus`` once the job has ended."""

    def probe() -> list[Any] | None:
        status, body = client.post("/exitstatus", ref(job))
        return body if status == 200 else None

    rc, _, (output, line) = wait_for(f"job {job['jobid']} to end", probe, timeout)
    return rc, output, line


@pytest.mark.parametrize("user,tag", [("kirby", "1"), ("mario", "2")])
def test_two_node_job_runs_one_real_container_per_node_and_rank_0s_output_and_rc_come_back(
    client: Client, server: Server, cluster: Cluster, user: str, tag: str
) -> None:
    job = native(
        server,
        cluster,
        f"docker://{cluster.images['public']}:{tag}",
        CONTAINER_PROBE,
        user=user,
    )
    rc, output, line = exit_status(client, job)
    uid = cluster.users[user].uid
    assert rc == 0, output
    assert f"rank 0 on snode1: public as {uid} map {uid} {uid} 1" in output, output
    # rank 1 ran its own container on the other node (the job's output holds every rank's)
    assert f"rank 1 on snode2: public as {uid} map {uid} {uid} 1" in output
    assert "COMPLETED" in line


def test_a_failing_app_is_rc_1(client: Client, server: Server, cluster: Cluster) -> None:
    job = native(
        server,
        cluster,
        f"{cluster.images['public']}:1",
        "echo failing in $(cat /etc/dssr-image); exit 3",
        nodes=1,
    )
    rc, output, line = exit_status(client, job)
    assert rc == 1 and "failing in public" in output and "FAILED" in line


def test_terminate_is_rc_minus_15(client: Client, server: Server, cluster: Cluster) -> None:
    job = native(server, cluster, f"{cluster.images['public']}:1", "sleep 120", nodes=2)
    wait_for("the job to run", lambda: listed(client, "/running", job), 60)
    time.sleep(2)  # in its container
    assert client.post("/terminate", {**ref(job), "force": False, "nodes": 2}) == (
        200,
        True,
    )
    rc, _, line = exit_status(client, job)
    assert rc == -15 and "CANCELLED" in line


def _manifest_gets(cluster: Cluster, repo: str, tag: str) -> int:
    """How often the registry has served the manifest of ``repo:tag`` (its access log): every pull asks."""
    log = (cluster.log_dir / "registry.out").read_text(errors="replace")
    return len(re.findall(rf'"GET /v2/{re.escape(repo)}/manifests/{re.escape(tag)} HTTP', log))


def _fresh_tag(cluster: Cluster, repo: str) -> str:
    """A tag nobody has pulled yet (a copy of tag 3 made in the registry now)."""
    tag = unique_name("t")
    cluster.run(
        [
            "skopeo",
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{cluster.registry}/{repo}:3",
            f"docker://{cluster.registry}/{repo}:{tag}",
        ],
        user="root",
        timeout=120,
    )
    return tag


def test_two_jobs_of_one_image_pull_it_once_into_the_shared_cache(
    client: Client, server: Server, cluster: Cluster
) -> None:
    repo = cluster.images["public"].split("/", 1)[1]
    shared_tag, control_tag = _fresh_tag(cluster, repo), _fresh_tag(cluster, repo)
    # every fresh tag is tag 3's image: a node's runtime cache left by an earlier run would serve the
    # pull from the cache by digest, without the manifest GET counted here; start from empty caches
    for user in ("kirby", "mario"):
        cluster.run(
            ["srun", "-N2", "--ntasks-per-node=1", "rm", "-rf", f"/tmp/dssr-apptainer-cache-{user}"],
            user=user,
            timeout=120,
        )
    image = f"{cluster.images['public']}:{shared_tag}"
    jobs = [native(server, cluster, image, "cat /etc/dssr-tag", user=u) for u in ("kirby", "mario")]
    results = [exit_status(client, job) for job in jobs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert all("3" in output.split() for _, output, _ in results)
    # what one pull costs the registry: a pull of the control tag by hand
    cluster.run(
        [
            "srun",
            "-N1",
            "bash",
            "-c",
            # a cache of its own: kirby's default cache may hold tag 3's digest (every fresh tag's) already
            f"cd $(mktemp -d) && APPTAINER_CACHEDIR=$PWD/cache APPTAINER_NOHTTPS=1 apptainer -s pull i.sif "
            f"docker://{cluster.images['public']}:{control_tag}",
        ],
        user="kirby",
        timeout=120,
    )
    one_pull = _manifest_gets(cluster, repo, control_tag)
    # four node scripts (two jobs of two users, two nodes each) cost the registry exactly one pull
    assert one_pull >= 1 and _manifest_gets(cluster, repo, shared_tag) == one_pull
    assert sum(output.count(f"pulling docker://{image} into") for _, output, _ in results) == 1
    shared = list((Path(cluster.scratch) / "images").glob(f"*_{shared_tag}-*.sif"))
    assert len(shared) == 1 and shared[0].stat().st_mode & 0o777 == 0o644


def test_a_private_image_goes_to_the_users_private_cache_and_its_password_is_never_shown(
    client: Client, server: Server, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    _, password = cluster.registry_credentials
    seen: list[str] = []
    stop = threading.Event()

    def watch_command_lines() -> None:  # `ps` on the nodes: every process's argv, from the host's /proc
        while not stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if password in text:
                    seen.append(text)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_command_lines, daemon=True)
    watcher.start()
    try:
        job = native(
            server,
            cluster,
            f"{cluster.images['private']}:1",
            "cat /etc/dssr-image",
            user="dovahkiin",
        )
        rc, output, _ = exit_status(client, job)
        batch = cluster.run(
            ["scontrol", "write", "batch_script", job["jobid"], "-"],
            user="root",
            check=False,
        )
    finally:
        stop.set()
        watcher.join(5)
    assert rc == 0 and "private" in output
    private = list((Path(cluster.scratch) / "users" / "dovahkiin" / "images").glob("*.sif"))
    assert len(private) == 1 and private[0].stat().st_mode & 0o777 == 0o600
    assert private[0].stat().st_uid == cluster.users["dovahkiin"].uid
    assert not list((Path(cluster.scratch) / "images").glob("*private*"))
    assert seen == []
    for text in (job["script"], batch.stdout, output, caplog.text):
        assert password not in text


@pytest.mark.parametrize("overlay_mb", [64, 0])
def test_an_overlay_or_a_writable_tmpfs_gives_a_writable_root(
    client: Client, server: Server, cluster: Cluster, overlay_mb: int
) -> None:
    job = native(
        server,
        cluster,
        f"{cluster.images['public']}:1",
        "echo written-$PROCESS_PROCID > /bin/new-file && cat /bin/new-file",
        overlay_mb=overlay_mb,
    )
    rc, output, _ = exit_status(client, job)
    assert rc == 0 and "written-0" in output, output
    assert "written-1" in output


def test_an_image_that_does_not_exist_fails_the_job_with_a_sentence_naming_it(
    client: Client, server: Server, cluster: Cluster
) -> None:
    image = f"{cluster.registry}/dssr/doesnotexist:1"
    job = native(server, cluster, image, "echo never", nodes=1)
    rc, output, _ = exit_status(client, job)
    assert rc == 1
    assert f"the image docker://{image} could not be pulled" in output
    assert "never" not in output


def test_an_upstream_template_calls_apptainer_itself(client: Client, cluster: Cluster) -> None:
    body = "\n".join(
        [
            'sif="$(mktemp -d)/app.sif"',
            'singularity "$SV_FLAG" pull "$sif" "$JARVICE_APP_IMAGE" || exit 1',
            'if singularity "$SV_FLAG" exec "$sif" /bin/sh -c "$JARVICE_CMD"; then echo JARVICE_CMD_SUCCESS; fi',
        ]
    )
    name = unique_name("tmpl")
    template = legacy_template(
        "echo app from $(cat /etc/dssr-image) on $(hostname) as $(id -un)",
        body=body,
        extra={
            "JOBOBJ_REPO": f"{cluster.images['public']}:4",
            "JOBOBJ_DEVICES": json.dumps(["exclusive=False"]),
        },
    )
    bearer = cluster.idp.mint(email=cluster.users["mario"].email, audience="jarvice")
    status, answer = client.post(
        "/submit",
        submit_args(name, 7, template, nodes=1, key="singularity", bearer=bearer),
    )
    assert status == 200, answer
    rc, output, _ = exit_status(client, {"name": name, "number": 7, "jobid": answer[0]})
    assert rc == 0, output
    assert "app from public on snode1 as mario" in output


def test_a_failing_rank_1_ends_the_whole_job_as_failed(client: Client, server: Server, cluster: Cluster) -> None:
    started = time.monotonic()
    job = native(
        server,
        cluster,
        f"{cluster.images['public']}:1",
        'if [ "$PROCESS_PROCID" = 1 ]; then exit 7; fi; sleep 90; echo finished',
    )
    rc, output, line = exit_status(client, job)
    assert rc == 1 and "FAILED" in line
    assert time.monotonic() - started < 80 and "finished" not in output


def test_verbose_runtime_calls_and_a_writable_tmpfs(
    client: Client, server: Server, cluster: Cluster, site: dict[str, str]
) -> None:
    verbose = Downstream(
        server.downstream.connector,
        SingularityExecutor(Settings({**site, "JARVICE_SINGULARITY_VERBOSE": "true"})),
    )
    job = native(
        verbose,
        cluster,
        f"{cluster.images['public']}:2",
        "echo tmpfs > /t && cat /t; exit 3",
        nodes=1,
        overlay_mb=0,
    )
    rc, output, _ = exit_status(client, job)
    assert rc == 1 and "tmpfs" in output
    assert "VERBOSE:" in output  # Apptainer's own -v lines
    assert "overlay create" not in output and "--overlay" not in output


def test_an_upstream_template_pulls_a_private_image_with_the_jobs_docker_secret_and_shows_it_nowhere(
    client: Client, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user, password = cluster.registry_credentials
    # what a JARVICE template does with the block's base64 credentials: hand them to the pull, in its environment
    body = "\n".join(
        [
            'sif="$(mktemp -d)/app.sif"',
            'APPTAINER_DOCKER_USERNAME="$(printf %s "$JARVICE_DOCKER_USERNAME" | base64 -d)" '
            'APPTAINER_DOCKER_PASSWORD="$(printf %s "$JARVICE_DOCKER_PASSWORD" | base64 -d)" '
            'apptainer "$SV_FLAG" pull "$sif" "$JARVICE_APP_IMAGE" || exit 1',
            'out=$(apptainer "$SV_FLAG" exec "$sif" /bin/sh -c "$JARVICE_CMD") && echo "cmd said: $out"',
            'if [ "$PROCESS_PROCID" = 0 ] && [ -n "$out" ]; then echo JARVICE_CMD_SUCCESS; fi',
        ]
    )
    secret = {
        "server": cluster.private_registry,
        "username": user,
        "password": password,
    }
    template = legacy_template(
        "cat /etc/dssr-image",
        body=body,
        extra={
            "JOBOBJ_REPO": f"{cluster.images['private']}:1",
            "JOBOBJ_DOCKER_SECRET": json.dumps(secret),
            "JOBOBJ_DEVICES": json.dumps(["exclusive=False"]),
        },
    )
    name = unique_name("tmpl")
    bearer = cluster.idp.mint(email=cluster.users["kirby"].email, audience="jarvice")
    status, answer = client.post(
        "/submit",
        submit_args(name, 7, template, nodes=2, key="singularity", bearer=bearer),
    )
    assert status == 200, answer
    batch = cluster.run(["scontrol", "write", "batch_script", answer[0], "-"], user="root", check=False).stdout
    rc, output, _ = exit_status(client, {"name": name, "number": 7, "jobid": answer[0]})
    assert rc == 0, output
    assert output.count("cmd said: private") == 2  # both nodes pulled with the secret and ran the image
    encoded = base64.b64encode(password.encode()).decode()
    for text in (answer[1], batch, output, caplog.text):
        assert password not in text and encoded not in text
