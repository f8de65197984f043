"""A job no node of the cluster can ever run is refused at submission with Slurm's words (HTTP 400),
over SSH and over slurmrestd, on the real clusters, and nothing of it is left waiting in the queue.

Submissions are held (dssr_core.batch.submit_once) and Slurm does not check a held job against its nodes:
over SSH ``sbatch --test-only`` asks first; slurmrestd has no test-only call, so the job is judged
by slurmctld once released, and cancelled and refused when it can never start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import BadRequest, ClusterError, Downstream, Identity, JobRef, JobSpec, JobState, Settings
from dssr_local.shell import ShellExecutor
from dssr_slurm.connector import SlurmConnector
from tests.cluster import Cluster
from tests.slurm.cluster_support import slurm_env
from tests.slurm_rest.test_backend_cluster import CASES, rest_env

pytestmark = pytest.mark.cluster

INTERFACES = [
    pytest.param(("slurm_cluster", "cli", ""), id="22.05-ssh"),
    pytest.param(("slurm2605_cluster", "cli", ""), id="26.05-ssh"),
    *CASES,  # every slurmrestd version, as the REST backend's own cluster tests run them
]
#: Slurm's words for a job no node can run (sbatch's, or slurmctld's reason over slurmrestd); a cluster
#: without GPUs refuses a GPU request at once as an invalid generic resource
SLURMS_WORDS = r"Requested (node|partition) configuration|Invalid generic resource"


@pytest.fixture(params=INTERFACES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cluster, Downstream, str]]:
    fixture, version, via_ssh = request.param
    cluster: Cluster = request.getfixturevalue(fixture)
    env = slurm_env(cluster, tmp_path) if version == "cli" else rest_env(cluster, tmp_path, version, via_ssh)
    settings = Settings(env)
    ds = Downstream(SlurmConnector(settings), ShellExecutor(settings))
    yield cluster, ds, version
    ds.close()


def spec(cluster: Cluster, version: str, what: str, **resources: Any) -> JobSpec:
    user = cluster.users["kirby"]
    identity = Identity(email=user.email)
    if version != "cli":
        token = cluster.idp.mint(email=user.email, user=user.name)
        identity = Identity(email=user.email, username=user.name, claims={"sun": user.name}, token=token)
    name = f"never-{what}-{int(time.time() * 1000) % 10**9}"
    return JobSpec(name=name, command="echo ran", identity=identity, exclusive=False, **resources)


def left_in_queue(cluster: Cluster, name: str) -> str:
    """Jobs of that name still pending or running (as root: every user's)."""
    cp = cluster.run(["squeue", "-h", "-t", "PD,R,CG,S", "-n", f"jarvice_{name}", "-o", "%i %T %r"], user="root")
    return cp.stdout.strip()


@pytest.mark.parametrize("what", ["gpus", "nodes", "memory"])
def test_a_job_no_node_can_run_is_refused_in_slurms_words_and_nothing_waits(
    case: tuple[Cluster, Downstream, str], what: str
) -> None:
    cluster, ds, version = case
    resources = {
        "gpus": {"gpus": cluster.gpus_per_node + 1},
        "nodes": {"nodes": len(cluster.nodes) + 1},
        "memory": {"memory_gb": 999_999},
    }[what]
    job = spec(cluster, version, what, **resources)
    with pytest.raises(BadRequest, match=SLURMS_WORDS) as refused:
        ds.submit(job)
    assert "Slurm refused the job" in str(refused.value)
    assert left_in_queue(cluster, job.name) == ""
    with pytest.raises(BadRequest, match=SLURMS_WORDS):  # and again: the upstream's retry is refused too
        ds.submit(job)


def test_a_job_asking_for_all_a_cluster_has_is_not_refused(case: tuple[Cluster, Downstream, str]) -> None:
    """The boundary: every node, and every GPU of each node where nodes have GPUs."""
    cluster, ds, version = case
    job = spec(cluster, version, "all", nodes=len(cluster.nodes), cores=1, gpus=cluster.gpus_per_node)
    ref = JobRef(job.name, 0, ds.submit(job).jobid)
    deadline = time.monotonic() + 90
    while True:
        try:
            end = ds.exitstatus(ref)
            break
        except ClusterError as error:  # not finished yet
            if not error.transient or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert end.state is JobState.COMPLETED, end
