"""RestBackend against the real slurmrestd of the test clusters (22.05: v0.0.38; 24.11: v0.0.40-42;
26.05: v0.0.43-45)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from dssr_core import BadRequest, ClusterError, Identity, Settings
from dssr_core.batch import ServiceShell, build_pool
from dssr_slurm.backend import AcctRecord, BatchRequest, SlurmBackend
from dssr_slurm.rest import RestBackend
from dssr_slurm.settings import SlurmSettings
from tests.cluster import Cluster
from tests.slurm.cluster_support import slurm_env

pytestmark = pytest.mark.cluster

T = TypeVar("T")
CASES = [
    pytest.param(("slurm_cluster", "v0.0.38", "true"), id="22.05-v0.0.38-ssh"),
    pytest.param(("slurm2411_cluster", "v0.0.40", "false"), id="24.11-v0.0.40-tcp"),
    pytest.param(("slurm2411_cluster", "v0.0.41", "true"), id="24.11-v0.0.41-ssh"),
    pytest.param(("slurm2411_cluster", "v0.0.42", "false"), id="24.11-v0.0.42-tcp"),
    pytest.param(("slurm2605_cluster", "v0.0.43", "false"), id="26.05-v0.0.43-tcp"),
    pytest.param(("slurm2605_cluster", "v0.0.44", "true"), id="26.05-v0.0.44-ssh"),
    pytest.param(("slurm2605_cluster", "v0.0.45", "false"), id="26.05-v0.0.45-tcp"),
]
#: the newest version of each cluster, for behaviour that does not differ between versions
ENDS = [CASES[0], CASES[3], CASES[6]]


def rest_env(cluster: Cluster, tmp: Path, version: str, via_ssh: str, **extra: str) -> dict[str, str]:
    env = slurm_env(
        cluster,
        tmp,
        JARVICE_SLURM_INTERFACE="http",
        JARVICE_SLURMRESTD_ADDR="http://127.0.0.1",
        JARVICE_SLURMRESTD_PORT=cluster.restd_url.rsplit(":", 1)[1],
        JARVICE_SLURMRESTD_API_VERSION=version,
        JARVICE_SLURMRESTD_VIA_SSH=via_ssh,
    )
    if cluster.chroot is not None:  # `scontrol token` over SSH would ask the 22.05 cluster
        env["JARVICE_SLURMRESTD_TOKEN"] = cluster.token(cluster.service_user, 3600)
    env.update(extra)
    return env


def make_backend(env: dict[str, str]) -> RestBackend:
    settings = Settings(env)
    cfg = SlurmSettings.from_settings(settings)
    return RestBackend.from_settings(settings, ServiceShell(build_pool(cfg), cfg))


def open_case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Cluster, RestBackend]:
    fixture, version, via_ssh = request.param
    cluster: Cluster = request.getfixturevalue(fixture)
    backend = make_backend(rest_env(cluster, tmp_path, version, via_ssh))
    request.addfinalizer(backend.close)
    return cluster, backend


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Cluster, RestBackend]:
    """Every version on its cluster."""
    return open_case(request, tmp_path)


@pytest.fixture(params=ENDS)
def end_case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Cluster, RestBackend]:
    """The oldest and the newest version."""
    return open_case(request, tmp_path)


def identity(cluster: Cluster, user: str = "kirby", lifespan: int = 600) -> Identity:
    token = cluster.idp.mint(email=cluster.users[user].email, user=user, lifespan=lifespan)
    return Identity(email=cluster.users[user].email, username=user, claims={"sun": user}, token=token)


def batch(cluster: Cluster, name: str, script: str, **kw: object) -> BatchRequest:
    workdir = f"{cluster.scratch}/users/kirby"
    unique = f"jarvice_rest-{name}-{int(time.time() * 1000) % 10**8}"
    return BatchRequest(
        name=unique,
        user="kirby",
        script="#!/bin/bash\n" + script + "\n",
        nodes=1,
        ntasks=1,
        exclusive=False,
        workdir=workdir,
        output=f"{workdir}/{unique}.out",
        partition=cluster.partition,
        time_limit="00:02:00",
        **kw,  # type: ignore[arg-type]  # each test passes each field the type BatchRequest wants
    )


def until(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def accounting(backend: SlurmBackend, jobids: list[str]) -> dict[str, AcctRecord]:
    """Accounting records, empty while slurmdbd says a record is not complete yet (a transient 500)."""
    try:
        return backend.accounting(jobids)
    except ClusterError as error:
        if not error.transient or "not complete yet" not in str(error):
            raise
        return {}


def final_record(backend: SlurmBackend, jobid: str, state: str) -> AcctRecord:
    return until(
        f"job {jobid} {state} in accounting",
        lambda: (lambda r: r if r and r.state == state else None)(accounting(backend, [jobid]).get(jobid)),
    )


def test_user_job_runs_then_ends_with_its_state_in_queue_then_accounting(case: tuple[Cluster, RestBackend]) -> None:
    cluster, backend = case
    ok = backend.submit_request(batch(cluster, "ok", "sleep 2; echo done"), identity(cluster))
    bad = backend.submit_request(batch(cluster, "bad", "sleep 2; exit 3"), identity(cluster))
    running = until("the job running", lambda: [j for j in backend.queue() if j.jobid == ok and j.state == "RUNNING"])
    assert running[0].user == "kirby" and running[0].nodes and running[0].name.startswith("jarvice_rest-ok")
    until("both jobs out of the queue", lambda: not {j.jobid for j in backend.queue()} & {ok, bad})
    records = until(
        "both jobs in accounting, in one call",
        lambda: (
            lambda r: (
                r
                if {r.get(ok, None) and r[ok].state, r.get(bad, None) and r[bad].state} == {"COMPLETED", "FAILED"}
                else None
            )
        )(accounting(backend, [ok, bad])),
    )
    done, failed = records[ok], records[bad]
    assert done.user == "kirby" and done.exit_code == "0:0" and done.elapsed >= "00:00:01"
    assert failed.state == "FAILED"


def test_held_job_waits_until_released(case: tuple[Cluster, RestBackend]) -> None:
    cluster, backend = case
    jobid = backend.submit_request(batch(cluster, "held", "true", hold=True), identity(cluster))
    job = until("the held job", lambda: [j for j in backend.queue() if j.jobid == jobid])[0]
    assert job.state == "PENDING" and job.reason == "JobHeldUser"
    backend.release(jobid)
    assert final_record(backend, jobid, "COMPLETED").exit_code == "0:0"


def test_gpus_per_node_reach_slurm_as_a_gpu_allocation(case: tuple[Cluster, RestBackend]) -> None:
    cluster, backend = case
    request = batch(cluster, "gpu", 'echo "cuda=$CUDA_VISIBLE_DEVICES on=$SLURM_GPUS_ON_NODE"', gpus_per_node=2)
    if cluster.gpus_per_node < 2:  # no GPUs on this cluster's nodes: Slurm itself refuses the GPUs asked for
        with pytest.raises(BadRequest, match="Invalid generic resource"):
            backend.submit_request(request, identity(cluster))
        return
    jobid = backend.submit_request(request, identity(cluster))
    assert final_record(backend, jobid, "COMPLETED").exit_code == "0:0"
    # both GPUs of the node, set by Slurm's gres/gpu plugin: the request really asked for them
    assert Path(request.output).read_text().split() == ["cuda=0,1", "on=2"]


def test_cancelled_job_ends_cancelled_and_cancelling_again_is_fine(case: tuple[Cluster, RestBackend]) -> None:
    cluster, backend = case
    jobid = backend.submit_request(batch(cluster, "cancel", "sleep 120"), identity(cluster))
    until("the job running", lambda: [j for j in backend.queue() if j.jobid == jobid and j.state == "RUNNING"])
    assert f"JobId={jobid}" in backend.show(jobid) and "JobState=RUNNING" in backend.show(jobid)
    backend.cancel(jobid)
    assert final_record(backend, jobid, "CANCELLED").jobid == jobid
    backend.cancel(jobid)  # already gone: not an error


def test_expired_user_token_is_a_bad_request_naming_the_cause(end_case: tuple[Cluster, RestBackend]) -> None:
    cluster, backend = end_case
    with pytest.raises(BadRequest, match="refused the user's token.*expired"):
        backend.submit_request(batch(cluster, "expired", "true"), identity(cluster, lifespan=-5))


def test_invalid_partition_is_a_bad_request_in_slurms_words(end_case: tuple[Cluster, RestBackend]) -> None:
    cluster, backend = end_case
    request = batch(cluster, "nopart", "true")
    request = BatchRequest(**{**request.__dict__, "partition": "nosuchpartition"})
    with pytest.raises(BadRequest, match="(?i)invalid partition"):
        backend.submit_request(request, identity(cluster))


def test_auto_version_is_the_newest_the_daemon_offers(end_case: tuple[Cluster, RestBackend], tmp_path: Path) -> None:
    cluster, _ = end_case
    backend = make_backend(rest_env(cluster, tmp_path, "auto", "false"))
    assert backend.adapter.version == cluster.rest_versions[-1]
    backend.ping()
    backend.close()


@pytest.mark.parametrize("fixture", ["slurm_cluster", "slurm2411_cluster", "slurm2605_cluster"])
def test_slurmrestd_down_is_a_cluster_error(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cluster: Cluster = request.getfixturevalue(fixture)
    backend = make_backend(
        rest_env(
            cluster,
            tmp_path,
            cluster.rest_versions[-1],
            "false",
            JARVICE_SLURMRESTD_PORT="1",
            JARVICE_SLURM_COMMAND_TIMEOUT="3",
        )
    )
    with pytest.raises(ClusterError, match="cannot be reached"):
        backend.ping()
    with pytest.raises(ClusterError):
        backend.queue()
    with pytest.raises(ClusterError):
        backend.submit_request(batch(cluster, "down", "true"), identity(cluster))
