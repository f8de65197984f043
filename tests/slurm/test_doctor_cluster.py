"""``dssr doctor`` on the real 22.05 cluster: a good site passes, and each fault made on purpose is named.

Faults go through the doctor's own settings where they can (a wrong
known_hosts, an unauthorized key, a scratch root made for the test, a
slurmrestd token of the wrong realm); the two that must touch the shared
cluster are undone in a ``finally`` at once: an account added with sacctmgr
for the test (kirby gets an association under it that jarvice does not
coordinate), and slurmdbd stopped for a few seconds ("sacct down").
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from dssr_core import Settings
from dssr_core.cli import main
from tests.cluster import Cluster, daemons, slurm2205
from tests.cluster.base import port_open, wait_for
from tests.slurm.cluster_support import mapping_file, slurm_env

pytestmark = pytest.mark.cluster


def doctor(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    rc = main(["doctor", *args], out=out, settings=Settings(env))
    return rc, out.getvalue().splitlines()


def line(lines: list[str], start: str) -> str:
    found = [x for x in lines if x.startswith(start)]
    assert found, f"no line starting {start!r} in:\n" + "\n".join(lines)
    return found[0]


def new_key(tmp: Path) -> Path:
    path = tmp / f"key-{secrets.token_hex(4)}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture
def env(slurm_cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    return slurm_env(slurm_cluster, tmp_path)


def test_a_good_site_passes_every_check_and_a_trial_job_runs_end_to_end(env: dict[str, str]) -> None:
    rc, lines = doctor(env, "--submit", "kirby@example.com", "--timeout", "240")
    assert rc == 0, "\n".join(lines)
    assert all(x.startswith("OK ") for x in lines)
    for start in (
        "OK settings parse",
        "OK SSH reaches 127.0.0.1:22022 with the right host key",
        "OK the service user 'jarvice' logs in",
        "OK squeue answers",
        "OK sacct answers",
        "OK scontrol answers",
        "OK 'jarvice' coordinates account 'nintendo'",
        "OK 'jarvice' coordinates account 'pc'",
        "OK kirby@example.com's key logs in as 'kirby'",
        "OK 'mario' can write its scratch folder",
        "OK the service user 'jarvice' can read and remove",
        "OK bearer-token keys load",
        "OK a trial job is submitted as kirby@example.com",
        "OK the trial job starts",
        "OK the trial job runs to its end",
        "OK the trial job's files are removed",
        "OK the trial job, end to end",
    ):
        line(lines, start)
    assert "kirby on node" in line(lines, "OK the trial job's exit status is read")
    assert " s) — job " in line(lines, "OK a trial job is submitted")  # each stage says its time


def test_a_wrong_host_key_is_named_and_nothing_is_sent_to_that_host(env: dict[str, str], tmp_path: Path) -> None:
    other = new_key(tmp_path).with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:22022 {other[0]} {other[1]}\n")
    rc, lines = doctor({**env, "JARVICE_SLURM_SSH_KNOWN_HOSTS": str(known)})
    assert rc == 1
    fail = line(lines, "FAIL SSH reaches 127.0.0.1:22022 with the right host key")
    assert "does not match" in fail and "ssh-keyscan -p 22022 127.0.0.1" in fail
    assert not [x for x in lines if "logs in" in x or "answers" in x]


def test_a_service_key_the_cluster_does_not_know_is_named(env: dict[str, str], tmp_path: Path) -> None:
    key = base64.b64encode(new_key(tmp_path).read_bytes()).decode()
    rc, lines = doctor({**env, "JARVICE_SLURM_SSH_PKEY": key})
    assert rc == 1
    fail = line(lines, "FAIL the service user 'jarvice' logs in with JARVICE_SLURM_SSH_PKEY")
    assert "refused" in fail and "authorized_keys" in fail
    assert key not in "\n".join(lines)
    # issue 21: each fault its own line: the job users' own logins are still checked
    line(lines, "OK kirby@example.com's key logs in as 'kirby'")
    assert not [x for x in lines if "squeue" in x]


def test_an_account_the_service_user_does_not_coordinate_is_named_with_the_command_that_fixes_it(
    slurm_cluster: Cluster, env: dict[str, str]
) -> None:
    account = f"dssrdoc{secrets.token_hex(3)}"
    slurm_cluster.run(["sacctmgr", "-i", "add", "account", account], user="root")
    try:
        slurm_cluster.run(["sacctmgr", "-i", "add", "user", "kirby", f"account={account}"], user="root")
        rc, lines = doctor(env)
    finally:
        slurm_cluster.run(
            ["sacctmgr", "-i", "delete", "user", "name=kirby", f"account={account}"], user="root", check=False
        )
        slurm_cluster.run(["sacctmgr", "-i", "delete", "account", account], user="root", check=False)
    assert rc == 1
    fail = line(lines, f"FAIL 'jarvice' coordinates account '{account}'")
    assert "kirby submit(s) under it" in fail and f"sacctmgr add coordinator account={account} names=jarvice" in fail
    line(lines, "OK 'jarvice' coordinates account 'nintendo'")


@pytest.fixture
def bad_scratch(slurm_cluster: Cluster) -> Iterator[Path]:
    """A scratch root made for the test: kirby's folder belongs to root, mario's is closed to jarvice,
    dovahkiin has none."""
    root = Path("/var/tmp") / f"dssr-doctor-{secrets.token_hex(4)}"
    users = root / "users"
    users.mkdir(parents=True)
    root.chmod(0o755)
    users.chmod(0o755)
    (users / "kirby").mkdir(mode=0o755)
    (users / "mario").mkdir(mode=0o700)
    shutil.chown(users / "mario", "mario", "mario")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_unwritable_and_unreadable_scratch_folders_are_named(env: dict[str, str], bad_scratch: Path) -> None:
    rc, lines = doctor({**env, "JARVICE_BAREMETAL_SCRATCH_DIR": str(bad_scratch)})
    assert rc == 1
    kirby = line(lines, f"FAIL 'kirby' can write its scratch folder {bad_scratch}/users/kirby")
    assert "chown kirby" in kirby
    line(lines, f"OK 'mario' can write its scratch folder {bad_scratch}/users/mario")
    mario = line(lines, f"FAIL the service user 'jarvice' can read and remove files in {bad_scratch}/users/mario")
    assert "cannot read" in mario
    missing = line(lines, f"FAIL 'dovahkiin' can write its scratch folder {bad_scratch}/users/dovahkiin")
    assert "does not exist" in missing
    assert os.listdir(bad_scratch / "users" / "mario") == []  # the doctor left nothing behind


def test_accounting_down_is_named(slurm_cluster: Cluster, env: dict[str, str]) -> None:
    """Stops the shared slurmdbd for the few seconds of one doctor run, and starts it again in a finally."""
    pidfile = slurm2205.STATE / "pids" / "slurmdbd.pid"
    record = json.loads(pidfile.read_text())
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{record['pid']}/environ").read_bytes().decode().split("\0")
        if "=" in item
    )
    os.kill(record["pid"], signal.SIGTERM)
    try:
        wait_for(
            "slurmdbd to stop",
            lambda: not Path(f"/proc/{record['pid']}").exists() or "zombie" in daemons.proc_state(record["pid"]),
            30,
        )
        rc, lines = doctor(env)
    finally:
        slurm2205.spawn("slurmdbd", record["argv"], env=environ)
        wait_for("slurmdbd", lambda: port_open(slurm2205.BRIDGE_IP, slurm2205.PORTS_2205["dbd"]), 60)
    assert rc == 1
    fail = line(lines, "FAIL sacct answers (accounting, slurmdbd)")
    assert "start slurmdbd" in fail
    line(lines, "OK squeue answers")
    assert slurm_cluster.run(["sacct", "-X", "-n", "-S", "now"], check=False).returncode == 0


def rest(env: dict[str, str], cluster: Cluster, **extra: str) -> dict[str, str]:
    return {
        **env,
        "JARVICE_SLURM_INTERFACE": "http",
        "JARVICE_SLURMRESTD_ADDR": "http://127.0.0.1",
        "JARVICE_SLURMRESTD_PORT": cluster.restd_url.rsplit(":", 1)[1],
        **extra,
    }


def test_slurmrestd_its_version_and_its_token_are_checked(slurm_cluster: Cluster, env: dict[str, str]) -> None:
    rc, lines = doctor(rest(env, slurm_cluster, JARVICE_SLURMRESTD_API_VERSION="v0.0.38"))
    assert rc == 0, "\n".join(lines)
    line(lines, "OK slurmrestd answers at http://127.0.0.1:6820")
    line(lines, "OK slurmrestd offers REST API v0.0.38")
    line(lines, "OK slurmrestd accepts the service token and reaches slurmctld — as jarvice")

    rc, lines = doctor(rest(env, slurm_cluster, JARVICE_SLURMRESTD_API_VERSION="v0.0.40"))
    assert rc == 1
    assert "set JARVICE_SLURMRESTD_API_VERSION" in line(lines, "FAIL slurmrestd offers REST API v0.0.40")

    import jwt

    foreign = jwt.encode(
        {"sun": "jarvice", "exp": int(time.time()) + 600}, "not this cluster's jwt_key, 32+ bytes", algorithm="HS256"
    )
    rc, lines = doctor(rest(env, slurm_cluster, JARVICE_SLURMRESTD_TOKEN=foreign))
    assert rc == 1
    line(lines, "OK slurmrestd answers at")
    assert "JARVICE_SLURMRESTD_TOKEN" in line(lines, "FAIL slurmrestd accepts the service token and reaches slurmctld")
    assert foreign not in "\n".join(lines)


@pytest.fixture
def jwks_url(slurm_cluster: Cluster) -> Iterator[str]:
    body = json.dumps(slurm_cluster.idp.jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/jarvice/protocol/openid-connect/certs"
    server.shutdown()


def test_the_jwks_is_fetched_and_an_unreachable_one_is_named(env: dict[str, str], jwks_url: str) -> None:
    base = {k: v for k, v in env.items() if k != "JARVICE_JWT_PUBLIC_KEY"}
    rc, lines = doctor({**base, "JARVICE_JWT_JWKS_URL": jwks_url})
    assert "1 key(s) (dssr-test-idp)" in line(lines, "OK bearer-token keys load")
    rc, lines = doctor({**base, "JARVICE_JWT_JWKS_URL": "http://127.0.0.1:1/certs"})
    assert rc == 1
    assert "cannot be read" in line(lines, "FAIL bearer-token keys load")


def test_the_container_runtime_is_checked_on_every_node(
    slurm_cluster: Cluster, env: dict[str, str], tmp_path: Path
) -> None:
    one = {
        **env,
        "JARVICE_BAREMETAL_EXECUTOR": "singularity",
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping_file(slurm_cluster, tmp_path / "one.yaml", ("kirby",))),
    }
    slurm_cluster.wait_idle(180)
    rc, lines = doctor(one)
    assert rc == 0, "\n".join(lines)
    for node in slurm_cluster.nodes:
        assert "apptainer version" in line(lines, f"OK the container runtime on {node}")
    slurm_cluster.wait_idle(180)
    rc, lines = doctor({**one, "JARVICE_SINGULARITY_BINARY": "/opt/no-such/apptainer"})
    assert rc == 1
    for node in slurm_cluster.nodes:
        fail = line(lines, f"FAIL the container runtime on {node}")
        assert "/opt/no-such/apptainer is not on the PATH" in fail and "JARVICE_SINGULARITY_BINARY" in fail


def test_over_slurmrestd_the_trial_job_runs_with_the_users_own_token(
    slurm_cluster: Cluster, env: dict[str, str]
) -> None:
    token = slurm_cluster.idp.mint(email="kirby@example.com", user="kirby", audience="jarvice")
    rc, lines = doctor(rest(env, slurm_cluster), "--token", token, "--timeout", "240")
    assert rc == 0, "\n".join(lines)
    line(lines, "OK a trial job is submitted as kirby@example.com")
    assert "kirby on node" in line(lines, "OK the trial job's exit status is read")
    assert token not in "\n".join(lines)


def test_dssr_connector_slurm_doctor_probes_the_nodes_for_the_executor_a_slurm_server_runs(
    slurm_cluster: Cluster, env: dict[str, str], tmp_path: Path
) -> None:
    """issue 21: without JARVICE_BAREMETAL_EXECUTOR, --connector slurm means the singularity executor, as for
    dssr-server: its node probes run (the doctor used to take the local connector's default, shell, and skip them)."""
    base = {k: v for k, v in env.items() if k not in ("JARVICE_BAREMETAL_CONNECTOR", "JARVICE_BAREMETAL_EXECUTOR")}
    base["JARVICE_USERS_ID_MAPPING_FILE"] = str(mapping_file(slurm_cluster, tmp_path / "one.yaml", ("kirby",)))
    slurm_cluster.wait_idle(180)
    out = io.StringIO()
    rc = main(["--connector", "slurm", "doctor"], out=out, settings=Settings(base))
    lines = out.getvalue().splitlines()
    assert rc == 0, "\n".join(lines)
    assert lines[0] == "OK settings parse — connector slurm, executor singularity"
    for node in slurm_cluster.nodes:
        line(lines, f"OK the container runtime on {node}")


def test_the_example_launch_scripts_settings_pass_every_check_of_the_doctor_on_the_cluster(
    slurm_cluster: Cluster, tmp_path: Path, jwks_url: str
) -> None:
    """examples/launch-slurm.sh as an administrator runs it before serving (`bash launch-slurm.sh doctor`),
    with its SITE values and its /etc/jarvice-dssr files those of the test cluster: every check passes, the
    script's own executor's too (singularity: the cluster's nodes have the stand-in apptainer).  Every
    address left in it is this machine's: nothing is sent off it."""
    from tests.core.test_examples import render_launch_script

    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copyfile(slurm_cluster.jarvice_key, etc / "jarvice_ed25519")
    shutil.copyfile(slurm_cluster.known_hosts, etc / "known_hosts")
    mapping_file(slurm_cluster, etc / "users_id_mapping_configuration.yaml")
    (etc / "registry_user").write_text("robot")
    (etc / "registry_password").write_text("pa55")
    (etc / "upstream_token").write_text(secrets.token_hex(32))
    script = tmp_path / "launch-slurm.sh"
    script.write_text(
        render_launch_script(
            etc,
            {
                "JARVICE_SLURM_CLUSTER_ADDR": slurm_cluster.host,
                "JARVICE_SLURM_CLUSTER_PORT": str(slurm_cluster.ssh_port),
                "JARVICE_SLURM_SSH_USER": slurm_cluster.service_user,
                "JARVICE_BAREMETAL_SCRATCH_DIR": str(slurm_cluster.scratch),
                "JARVICE_JWT_ISSUER": slurm_cluster.idp.issuer,  # checked in tokens, never fetched
                "JARVICE_JWT_JWKS_URL": jwks_url,  # the test identity provider's keys, on loopback
                "JARVICE_JWT_AUDIENCE": "jarvice",
                "JARVICE_SYSTEM_REGISTRY": "127.0.0.1:5000",  # the stand-in apptainer pulls nothing from it
                "JARVICE_SYSTEM_REPO_BASE": "jarvice-system/images",
                "JARVICE_IMAGES_TAG": "jarvice-test",
            },
        )
    )
    # the addresses left: the cluster's and the key server's (loopback), and the issuer's name (never resolved)
    assert slurm_cluster.host == "127.0.0.1"
    exports = "\n".join(x for x in script.read_text().splitlines() if x.startswith("export "))
    assert set(re.findall(r"https?://([^/:\"']+)", exports)) <= {"127.0.0.1", "idp.test"}
    assert not re.search(r"\.example\b|pkg\.dev", exports)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run(["bash", str(script), "doctor"], capture_output=True, text=True, env=env, timeout=400)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines and all(x.startswith("OK ") for x in lines), result.stdout
    assert lines[0] == "OK settings parse — connector slurm, executor singularity"
    assert lines[1] == "OK the service user's key (JARVICE_SLURM_SSH_PKEY_FILE) loads — ssh-ed25519"
    for start in (
        "OK SSH reaches 127.0.0.1:",
        "OK the service user 'jarvice' logs in",
        "OK sacct answers",
        "OK the container runtime on node",
        "OK kirby@example.com's key logs in as 'kirby'",
        "OK the container runtime on node2",
        "OK 'jarvice' coordinates account 'nintendo'",
        "OK bearer-token keys load — JARVICE_JWT_JWKS_URL: 1 key(s)",
    ):
        line(lines, start)
