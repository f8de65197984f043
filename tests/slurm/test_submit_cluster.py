"""A submission costs one round trip to the cluster, on the real clusters: over SSH one remote command
(the whole submit-once protocol as one script), over slurmrestd no wait for slurmctld's first look."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from dssr_core import Downstream, Identity, JobRef, JobSpec, Settings, metrics
from dssr_local.shell import ShellExecutor
from dssr_slurm.connector import SlurmConnector
from tests.cluster import Cluster
from tests.slurm.cluster_support import slurm_env
from tests.slurm_rest.test_backend_cluster import rest_env

pytestmark = pytest.mark.cluster


class Calls(metrics.Recorder):
    """Records the kind of every cluster call (a metrics recorder: what /metrics counts)."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def cluster_call(self, kind: str, seconds: float, outcome: str) -> None:
        self.kinds.append(kind)


@pytest.fixture
def calls() -> Iterator[Calls]:
    recorder = Calls()
    previous = metrics.install(recorder)
    yield recorder
    metrics.install(previous)


def spec(cluster: Cluster, name: str, token: bool = False) -> JobSpec:
    user = cluster.users["kirby"]
    identity = Identity(email=user.email)
    if token:
        identity = Identity(
            email=user.email,
            username=user.name,
            claims={"sun": user.name},
            token=cluster.idp.mint(email=user.email, user=user.name),
        )
    return JobSpec(name=name, command="echo one", identity=identity, exclusive=False)


def test_a_submission_over_ssh_is_one_remote_command(slurm_cluster: Cluster, tmp_path: Path, calls: Calls) -> None:
    # the cluster's shape (one sinfo as the service user) is read once per status ttl, not per submission
    env = slurm_env(slurm_cluster, tmp_path, JARVICE_SLURM_STATUS_TTL="60")
    ds = Downstream(SlurmConnector(Settings(env)), ShellExecutor(Settings({})))
    try:
        warm = ds.submit(spec(slurm_cluster, f"warm-{tmp_path.name[-12:]}"))
        assert calls.kinds == ["sinfo", "sbatch"]
        name = f"once-{tmp_path.name[-12:]}"
        calls.kinds.clear()
        first = ds.submit(spec(slurm_cluster, name))
        assert calls.kinds == ["sbatch"]
        calls.kinds.clear()
        again = ds.submit(spec(slurm_cluster, name))  # the upstream's retry: found, one command too
        assert calls.kinds == ["sbatch"] and again.jobid == first.jobid and again.existed
        ds.terminate(JobRef(name, 0, first.jobid))
        ds.terminate(JobRef(f"warm-{tmp_path.name[-12:]}", 0, warm.jobid))
    finally:
        ds.close()


def test_a_submission_over_slurmrestd_that_fits_makes_no_look_after_its_release(
    slurm_cluster: Cluster, tmp_path: Path, calls: Calls
) -> None:
    env = rest_env(slurm_cluster, tmp_path, "v0.0.38", "true")
    ds = Downstream(SlurmConnector(Settings(env)), ShellExecutor(Settings({})))
    try:
        ds.submit(spec(slurm_cluster, f"warm-{tmp_path.name[-12:]}", token=True))  # reads the cluster's shape
        calls.kinds.clear()
        name = f"fits-{tmp_path.name[-12:]}"
        job = ds.submit(spec(slurm_cluster, name, token=True))
        submitted = [kind for kind in calls.kinds if "nodes" not in kind and "partitions" not in kind]
        assert submitted == [
            "slurmrestd GET /slurm/v0.0.38/jobs",
            "slurmrestd POST /slurm/v0.0.38/job/submit",
            "slurmrestd GET /slurm/v0.0.38/jobs",
            "slurmrestd POST /slurm/v0.0.38/job/{id}",
        ]
        ds.terminate(JobRef(name, 0, job.jobid))
    finally:
        ds.close()
