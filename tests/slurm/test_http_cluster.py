"""The legacy HTTP API on the Slurm connector (cli interface), against the real test cluster.

Jobs are submitted the way a JARVICE upstream does (an upstream template in
``hpc_script``, a bearer token from the identity provider) to the real server
(``dssr_server`` under waitress) and run with the ``shell`` executor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dssr_core.testing.contract import unique_name, wait_for
from tests.cluster import Cluster
from tests.helpers import legacy_template, submit_args
from tests.slurm.cluster_support import Server, serve, slurm_env

pytestmark = pytest.mark.cluster
T = TypeVar("T")


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, args: Any = None, timeout: float = 60) -> tuple[int, Any]:
        data = None
        if args is not None:
            data = urllib.parse.urlencode({"args": json.dumps(args)}).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, body, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, body, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
        text = body.decode()
        return status, json.loads(text) if "json" in ctype and text else text

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def post(self, path: str, args: Any) -> tuple[int, Any]:
        return self.call("POST", path, args)


@pytest.fixture(scope="module")
def server(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(slurm_env(slurm_cluster, tmp_path_factory.mktemp("slurm-http")))


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url)


@pytest.fixture(scope="module")
def token(slurm_cluster: Cluster) -> Callable[..., str]:
    def mint(user: str = "kirby", **kw: Any) -> str:
        return slurm_cluster.idp.mint(email=f"{user}@example.com", audience="jarvice", **kw)

    return mint


def submit(
    client: Client,
    token: Callable[..., str],
    command: str,
    *,
    nodes: int = 1,
    name: str | None = None,
    devices: list[str] | None = None,
    bearer: str | None = None,
    **keys: str,
) -> dict[str, Any]:
    """``keys``: more ``JOBOBJ_*`` / ``JARVICE_*`` lines of the upstream template."""
    name = name or unique_name("http")
    extra = {"JOBOBJ_DEVICES": json.dumps(devices or ["exclusive=False"]), **keys}
    args = submit_args(
        name,
        7,
        legacy_template(command, extra=extra),
        nodes=nodes,
        key="shell",
        bearer=bearer if bearer is not None else token(),
    )
    status, body = client.post("/submit", args)
    assert status == 200, body
    return {"name": name, "number": 7, "jobid": body[0], "fscript": body[1], "args": args}


def exit_status(client: Client, job: dict[str, Any], timeout: float = 60) -> list[Any]:
    ref = {k: job[k] for k in ("name", "number", "jobid")}

    def probe() -> list[Any] | None:
        status, body = client.post("/exitstatus", ref)
        return body if status == 200 else None

    return wait_for(f"job {job['jobid']} to end", probe, timeout)


def listed(client: Client, path: str, job: dict[str, Any]) -> bool:
    status, body = client.get(path)
    return status == 200 and [job["name"], job["jobid"]] in body


def in_slurm(cluster: Cluster, name: str) -> str:
    return cluster.run(["squeue", "-h", "-t", "all", "-n", f"jarvice_{name}", "-o", "%i"], user="root").stdout.strip()


def test_two_node_job_runs_on_both_nodes_as_the_mapped_user_and_its_output_comes_back(
    client: Client, token: Callable[..., str]
) -> None:
    job = submit(
        client, token, 'echo "rank=$PROCESS_PROCID node=$PROCESS_NODENAME user=$(id -un) nodes=$JOB_NNODES"', nodes=2
    )
    rc, elapsed, (output, line) = exit_status(client, job)
    assert rc == 0, output
    assert "rank=0 node=node1 user=kirby nodes=2" in output
    assert "rank=1 node=node2 user=kirby nodes=2" in output
    assert line == "<< termination state: COMPLETED -- see STDOUT for job errors >>"
    assert len(elapsed.split(":")) == 3


def test_gpu_job_gets_the_gpus_it_asked_for_on_every_node(client: Client, token: Callable[..., str]) -> None:
    job = submit(
        client,
        token,
        'echo "rank=$PROCESS_PROCID gpus=$JOB_GPUS_PER_NODE cuda=$CUDA_VISIBLE_DEVICES"',
        nodes=2,
        JOBOBJ_GPUS="1",
    )
    rc, _, (output, _) = exit_status(client, job)
    assert rc == 0, output
    # CUDA_VISIBLE_DEVICES is set by Slurm's gres/gpu plugin on the node, from the job's allocation
    assert "rank=0 gpus=1 cuda=0" in output and "rank=1 gpus=1 cuda=0" in output, output


def test_failing_job_has_rc_1(client: Client, token: Callable[..., str]) -> None:
    job = submit(client, token, "echo failing; exit 3")
    rc, _, (output, line) = exit_status(client, job)
    assert rc == 1 and "failing" in output and "FAILED" in line


def test_terminated_job_has_rc_minus_15(client: Client, token: Callable[..., str]) -> None:
    job = submit(client, token, "sleep 120")
    ref = {k: job[k] for k in ("name", "number", "jobid")}
    wait_for("the job to run", lambda: listed(client, "/running", job))
    assert client.post("/terminate", {**ref, "force": False, "nodes": 1}) == (200, True)
    rc, _, (_, line) = exit_status(client, job)
    assert rc == -15 and "CANCELLED" in line


def test_held_job_is_queued_and_runs_after_release(
    client: Client, token: Callable[..., str], slurm_cluster: Cluster
) -> None:
    job = submit(client, token, "echo released", devices=["exclusive=False", "sbatch_begin=now+600"])
    ref = {k: job[k] for k in ("name", "number", "jobid")}
    slurm_cluster.run(["scontrol", "hold", job["jobid"]])
    slurm_cluster.run(["scontrol", "update", f"JobId={job['jobid']}", "StartTime=now"])
    time.sleep(1.5)
    assert listed(client, "/queued", job)
    status, body = client.post("/runstatus", ref)
    assert status == 200 and body[0] == [] and body[2] == f"{job['name']}/7/{job['jobid']}"
    assert client.post("/release", ref) == (200, True)
    rc, _, (output, _) = exit_status(client, job)
    assert rc == 0 and "released" in output


def test_events_tail_and_pvcls(client: Client, token: Callable[..., str], slurm_cluster: Cluster) -> None:
    job = submit(client, token, "seq 1 30; sleep 60")
    prefix = f"/request/{job['name']}/7/{job['jobid']}"
    status, text = client.post("/events", {k: job[k] for k in ("name", "number", "jobid")})
    assert status == 200 and f"JobId={job['jobid']}" in text and f"jarvice_{job['name']}" in text

    def tail() -> str | None:
        status, body = client.post(prefix + "/tail", {"qs": {"lines": ["3"]}})
        return body if status == 200 and body.endswith("30\n") else None

    assert wait_for("output", tail).splitlines() == ["28", "29", "30"]
    folder = f"{slurm_cluster.scratch}/users/kirby"
    status, listing = client.post("/request/pvcls", {"qs": {"path": [folder], "details": ["true"]}})
    assert status == 200
    assert any(line.endswith(f"/data{folder}/jarvice_{job['name']}.out") for line in listing.splitlines())
    assert client.post(prefix + "/abort", {"qs": {}})[0] == 200


@pytest.mark.parametrize("path", ["/etc", "/../../etc", "{scratch}/../..", "{scratch}/users/kirby/../../../../etc"])
def test_pvcls_refuses_paths_outside_the_storage(client: Client, slurm_cluster: Cluster, path: str) -> None:
    status, body = client.post("/request/pvcls", {"qs": {"path": [path.format(scratch=slurm_cluster.scratch)]}})
    assert status == 400, body


def _foreign_token(email: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    return jwt.encode(
        {"iss": "https://idp.test/realms/jarvice", "azp": "jarvice", "email": email, "exp": now + 600, "iat": now},
        pem,
        algorithm="RS256",
        headers={"kid": "dssr-test-idp"},
    )


@pytest.mark.parametrize("case", ["forged", "expired", "unmapped", "other-audience"])
def test_bad_identity_is_refused_with_400_and_nothing_is_queued(
    client: Client, token: Callable[..., str], slurm_cluster: Cluster, case: str
) -> None:
    bearer = {
        "forged": lambda: _foreign_token("kirby@example.com"),
        "expired": lambda: token(lifespan=-600),
        "unmapped": lambda: slurm_cluster.idp.mint(email="luigi@example.com", audience="jarvice"),
        "other-audience": lambda: slurm_cluster.idp.mint(email="kirby@example.com", audience="someone-else"),
    }[case]()
    name = unique_name("refused")
    args = submit_args(name, 1, legacy_template("echo no"), key="shell", bearer=bearer)
    status, body = client.post("/submit", args)
    assert status == 400 and "error" in body
    assert in_slurm(slurm_cluster, name) == ""


@pytest.mark.parametrize("name", ["x;touch${IFS}/tmp/dssr-pwned", "$(id)", "a b", "`id`", "../x", "-x"])
def test_job_names_with_shell_syntax_are_refused(client: Client, token: Callable[..., str], name: str) -> None:
    args = submit_args(name, 1, legacy_template("echo no"), key="shell", bearer=token())
    status, body = client.post("/submit", args)
    assert status == 400 and "error" in body
    assert not os.path.exists("/tmp/dssr-pwned")


def test_submit_retry_returns_the_same_job(client: Client, token: Callable[..., str], slurm_cluster: Cluster) -> None:
    job = submit(client, token, "sleep 30")
    status, body = client.post("/submit", job["args"])
    assert status == 200 and body[0] == job["jobid"]
    assert in_slurm(slurm_cluster, job["name"]) == job["jobid"]
    client.post(f"/request/{job['name']}/7/{job['jobid']}/abort", {"qs": {}})


def test_fscript_holds_no_credential(client: Client, token: Callable[..., str]) -> None:
    bearer = token()
    job = submit(client, token, "echo fscript", bearer=bearer)
    assert bearer not in job["fscript"] and "PRIVATE KEY" not in job["fscript"]
    assert "srun" in job["fscript"]
    exit_status(client, job)


def _sshd_pids(cluster: Cluster) -> list[int]:
    """The test cluster's sshd and its session processes."""
    main = int((cluster.state_dir / "ssh" / "sshd.pid").read_text().split()[0])
    pids = [main]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == main:
                pids.append(int(entry.name))
    return pids


def test_cluster_ssh_outage_is_500_on_gc_and_calls_succeed_after_sshd_restarts(
    client: Client, token: Callable[..., str], slurm_cluster: Cluster
) -> None:
    job = submit(client, token, "sleep 4; echo survived")
    assert client.get("/gc") == (200, {"status": "OK"})
    config = slurm_cluster.state_dir / "ssh" / "sshd_config"
    for pid in _sshd_pids(slurm_cluster):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        time.sleep(0.6)  # the status snapshot (TTL 0.5 s) is stale: the next poll must reach the cluster
        assert client.get("/gc") == (500, {"status": "BAD"})
        assert client.get("/running")[0] == 500
    finally:
        subprocess.run(["/usr/sbin/sshd", "-f", str(config), "-E", str(slurm_cluster.log_dir / "sshd.log")], check=True)
    wait_for("sshd", lambda: client.get("/gc")[0] == 200, timeout=20)
    assert client.get("/running")[0] == 200
    rc, _, (output, _) = exit_status(client, job)
    assert rc == 0 and "survived" in output
    again = submit(client, token, "echo after the outage")
    assert exit_status(client, again)[0] == 0
