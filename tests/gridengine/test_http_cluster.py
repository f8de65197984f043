"""The legacy HTTP API on the Grid Engine connector, against the real Grid Engine 8.1.9 cluster.

The same calls as tests/slurm/test_http_cluster.py makes on Slurm: an upstream template in
``hpc_script``, a bearer token from the test identity provider, the real server (``dssr_server``
under waitress), the ``shell`` executor.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator

import pytest

from dssr_core.testing.contract import unique_name, wait_for
from tests.cluster.gridengine import GECluster
from tests.gridengine.support import ge_env
from tests.helpers import legacy_template, submit_args
from tests.slurm.cluster_support import Server, serve
from tests.slurm.test_http_cluster import Client, _foreign_token, exit_status, listed, submit

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def server(gridengine_cluster: GECluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(ge_env(gridengine_cluster, tmp_path_factory.mktemp("ge-http")))


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url)


@pytest.fixture(scope="module")
def token(gridengine_cluster: GECluster) -> Callable[..., str]:
    def mint(user: str = "kirby", **kw: Any) -> str:
        return gridengine_cluster.idp.mint(email=f"{user}@example.com", audience="jarvice", **kw)

    return mint


def in_qmaster(cluster: GECluster, name: str) -> list[str]:
    """Ids of the jobs of this name in the qmaster, every user's."""
    out = cluster.run(["qstat", "-u", "*"], user="root").stdout.splitlines()[2:]
    full = f"jarvice_{name}"[:10]  # qstat's plain listing cuts names at 10 characters
    ids = []
    for line in out:
        fields = line.split()
        if len(fields) > 2 and fields[2] == full:
            # a job listed a moment ago may have left since (another test's, whose name starts alike)
            detail = cluster.run(["qstat", "-j", fields[0]], user="root", check=False).stdout
            if f"job_name:                   jarvice_{name}\n" in detail:
                ids.append(fields[0])
    return ids


def test_two_node_job_runs_on_both_hosts_as_the_mapped_user_and_its_output_comes_back(
    client: Client, token: Callable[..., str]
) -> None:
    job = submit(
        client,
        token,
        'echo "rank=$PROCESS_PROCID node=$PROCESS_NODENAME user=$(id -un) nodes=$JOB_NNODES list=$JOB_JOB_NODELIST"',
        nodes=2,
    )
    rc, elapsed, (output, line) = exit_status(client, job)
    assert rc == 0, output
    ranks = sorted(ln for ln in output.splitlines() if ln.startswith("rank="))
    assert [r.split()[0] for r in ranks] == ["rank=0", "rank=1"], output
    assert {r.split()[1] for r in ranks} == {"node=genode1", "node=genode2"}
    assert all("user=kirby nodes=2" in r for r in ranks)
    assert line == "<< termination state: COMPLETED (failed 0, exit_status 0) -- see STDOUT for job errors >>"
    assert len(elapsed.split(":")) == 3


def test_rank_0s_exit_code_is_the_jobs(client: Client, token: Callable[..., str]) -> None:
    job = submit(client, token, '[ "$PROCESS_PROCID" = 0 ] && exit 4; echo "rank $PROCESS_PROCID ends well"', nodes=2)
    rc, _, (output, line) = exit_status(client, job)
    assert rc == 1 and "FAILED" in line, output


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
    assert not listed(client, "/running", job) and not listed(client, "/queued", job)


def test_a_job_terminated_before_it_started_is_cancelled(
    client: Client, token: Callable[..., str], gridengine_cluster: GECluster
) -> None:
    job = submit(client, token, "echo never", devices=["exclusive=False", "sbatch_a=203001010000"])
    ref = {k: job[k] for k in ("name", "number", "jobid")}
    assert listed(client, "/queued", job)
    assert client.post("/terminate", {**ref, "force": False, "nodes": 1}) == (200, True)
    rc, _, (output, line) = exit_status(client, job)  # Grid Engine accounts nothing for it
    assert rc == -15 and "CANCELLED" in line and "never" not in output


def test_held_job_is_queued_and_runs_after_release(
    client: Client, token: Callable[..., str], gridengine_cluster: GECluster
) -> None:
    job = submit(client, token, "echo released", devices=["exclusive=False", "sbatch_a=203001010000"])
    ref = {k: job[k] for k in ("name", "number", "jobid")}
    gridengine_cluster.run(["qhold", "-h", "u", job["jobid"]], user="root")
    gridengine_cluster.run(["qalter", "-a", time.strftime("%Y%m%d%H%M"), job["jobid"]], user="root")
    time.sleep(2)
    assert listed(client, "/queued", job)
    status, body = client.post("/runstatus", ref)
    assert status == 200 and body[0] == [] and body[2] == f"{job['name']}/7/{job['jobid']}"
    assert client.post("/release", ref) == (200, True)
    rc, _, (output, _) = exit_status(client, job)
    assert rc == 0 and "released" in output


def test_events_tail_and_pvcls(client: Client, token: Callable[..., str], gridengine_cluster: GECluster) -> None:
    job = submit(client, token, "seq 1 30; sleep 60")
    prefix = f"/request/{job['name']}/7/{job['jobid']}"
    status, text = client.post("/events", {k: job[k] for k in ("name", "number", "jobid")})
    assert status == 200 and job["jobid"] in text and f"jarvice_{job['name']}" in text

    def tail() -> str | None:
        status, body = client.post(prefix + "/tail", {"qs": {"lines": ["3"]}})
        return body if status == 200 and body.endswith("30\n") else None

    assert wait_for("output", tail).splitlines() == ["28", "29", "30"]
    folder = f"{gridengine_cluster.scratch}/users/kirby"
    status, listing = client.post("/request/pvcls", {"qs": {"path": [folder], "details": ["true"]}})
    assert status == 200
    assert any(line.endswith(f"/data{folder}/jarvice_{job['name']}.out") for line in listing.splitlines())
    assert client.post(prefix + "/abort", {"qs": {}})[0] == 200


@pytest.mark.parametrize("path", ["/etc", "/../../etc", "{scratch}/../..", "{scratch}/users/kirby/../../../../etc"])
def test_pvcls_refuses_paths_outside_the_storage(client: Client, gridengine_cluster: GECluster, path: str) -> None:
    status, body = client.post("/request/pvcls", {"qs": {"path": [path.format(scratch=gridengine_cluster.scratch)]}})
    assert status == 400, body


@pytest.mark.parametrize("case", ["forged", "expired", "unmapped", "other-audience"])
def test_bad_identity_is_refused_with_400_and_nothing_is_queued(
    client: Client, token: Callable[..., str], gridengine_cluster: GECluster, case: str
) -> None:
    bearer = {
        "forged": lambda: _foreign_token("kirby@example.com"),
        "expired": lambda: token(lifespan=-600),
        "unmapped": lambda: gridengine_cluster.idp.mint(email="luigi@example.com", audience="jarvice"),
        "other-audience": lambda: gridengine_cluster.idp.mint(email="kirby@example.com", audience="someone-else"),
    }[case]()
    name = unique_name("refused")
    args = submit_args(name, 1, legacy_template("echo no"), key="shell", bearer=bearer)
    status, body = client.post("/submit", args)
    assert status == 400 and "error" in body
    assert in_qmaster(gridengine_cluster, name) == []


@pytest.mark.parametrize(
    "devices",
    [["exclusive=False", "sbatch_N=other"], ["exclusive=False", "sbatch_pe=make"], ["exclusive=False"]],
    ids=["reserved-flag", "reserved-pe", "more-nodes-than-hosts"],
)
def test_jobs_grid_engine_cannot_run_are_refused_with_400(
    client: Client, token: Callable[..., str], gridengine_cluster: GECluster, devices: list[str]
) -> None:
    name = unique_name("refused")
    nodes = 3 if devices == ["exclusive=False"] else 1
    args = submit_args(
        name,
        1,
        legacy_template("echo no", extra={"JOBOBJ_DEVICES": __import__("json").dumps(devices)}),
        nodes=nodes,
        key="shell",
        bearer=token(),
    )
    status, body = client.post("/submit", args)
    assert status == 400 and "error" in body, body
    assert in_qmaster(gridengine_cluster, name) == []


@pytest.mark.parametrize("name", ["x;touch${IFS}/tmp/dssr-pwned", "$(id)", "a b", "`id`", "../x", "-x"])
def test_job_names_with_shell_syntax_are_refused(client: Client, token: Callable[..., str], name: str) -> None:
    args = submit_args(name, 1, legacy_template("echo no"), key="shell", bearer=token())
    status, body = client.post("/submit", args)
    assert status == 400 and "error" in body
    assert not os.path.exists("/tmp/dssr-pwned")


def test_submit_retry_returns_the_same_job(
    client: Client, token: Callable[..., str], gridengine_cluster: GECluster
) -> None:
    job = submit(client, token, "sleep 30")
    status, body = client.post("/submit", job["args"])
    assert status == 200 and body[0] == job["jobid"]
    assert in_qmaster(gridengine_cluster, job["name"]) == [job["jobid"]]
    client.post(f"/request/{job['name']}/7/{job['jobid']}/abort", {"qs": {}})


def test_unknown_jobs_are_404_and_ids_grid_engine_never_gives_are_400(client: Client) -> None:
    ref = {"name": unique_name("unknown"), "number": 1, "jobid": "9999990"}
    assert client.post("/release", ref)[0] == 404
    assert client.post("/exitstatus", {**ref, "jobid": "99999999"})[0] == 400


def test_fscript_holds_no_credential(client: Client, token: Callable[..., str]) -> None:
    bearer = token()
    job = submit(client, token, "echo fscript", bearer=bearer)
    assert bearer not in job["fscript"] and "PRIVATE KEY" not in job["fscript"]
    assert "qrsh -inherit" in job["fscript"]
    exit_status(client, job)
