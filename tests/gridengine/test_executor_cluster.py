"""The Singularity executor's per-node launch on the Grid Engine cluster: one container per host of the job's
parallel environment (``qrsh -inherit``), rank 0's exit code the job's.

The runtime is the Apptainer **stand-in** (tests/standin/apptainer, which is not Apptainer: no container
runs here; it checks each call's command line, records it, and runs the command natively); what is
proven is the connector's part: which hosts, how many containers, whose output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, JobState, Settings
from dssr_gridengine.connector import GridEngineConnector
from dssr_singularity import SingularityExecutor
from tests.cluster.gridengine import GECluster
from tests.gridengine.support import ge_env
from tests.singularity.cluster_support import job_dir, of, standin_calls, submit, unique, wait_end
from tests.singularity.helpers import SYSTEM

pytestmark = pytest.mark.cluster


@pytest.fixture
def downstream(gridengine_cluster: GECluster, tmp_path: Path) -> Iterator[Downstream]:
    if not gridengine_cluster.standin:
        pytest.fail("the Grid Engine cluster has no Apptainer stand-in (tests/standin/apptainer)")
    env = {**ge_env(gridengine_cluster, tmp_path), **SYSTEM, "JARVICE_SINGULARITY_BINARY": gridengine_cluster.standin}
    settings = Settings(env)
    ds = Downstream(GridEngineConnector(settings), SingularityExecutor(settings))
    yield ds
    ds.close()


def test_a_two_node_job_runs_one_container_on_each_host_and_returns_rank_0s_output(
    downstream: Downstream, gridengine_cluster: GECluster
) -> None:
    spec = JobSpec(
        name=unique("sing"),
        nodes=2,
        image=f"docker.io/library/ubuntu:{unique('t')}",
        command='echo "rank $PROCESS_PROCID of $JOB_NNODES on $(hostname)"',
        identity=Identity(email="kirby@example.com", username="kirby"),
        exclusive=False,
    )
    ref, script = submit(downstream, spec)
    assert "qrsh -inherit" in script
    end = wait_end(downstream, ref)
    assert end.state is JobState.COMPLETED, end.output
    runs = [c for c in standin_calls(gridengine_cluster, "kirby", spec.name) if c["argv"] in of([c], "exec")]
    assert sorted((c["hostname"], c["procid"]) for c in runs) == [("genode1", "0"), ("genode2", "1")] or sorted(
        (c["hostname"], c["procid"]) for c in runs
    ) == [("genode1", "1"), ("genode2", "0")], runs
    rank0_host = next(c["hostname"] for c in runs if c["procid"] == "0")
    assert f"rank 0 of 2 on {rank0_host}" in end.output
    # every rank writes to the job's output (as srun's tasks do); rank 0's own log and exit code are its alone
    folder = job_dir(gridengine_cluster, "kirby", spec.name)
    assert "rank 1 of 2" in end.output
    assert "rank 0 of 2" in (folder / "rank0.log").read_text() and "rank 1" not in (folder / "rank0.log").read_text()
    assert (folder / "rank0.rc").read_text().strip() == "0"


def test_rank_0s_failure_is_the_jobs_end_in_the_container_too(downstream: Downstream) -> None:
    spec = JobSpec(
        name=unique("sing"),
        nodes=2,
        image=f"docker.io/library/ubuntu:{unique('t')}",
        command='[ "$PROCESS_PROCID" = 0 ] && exit 5; echo "rank $PROCESS_PROCID fine"',
        identity=Identity(email="kirby@example.com", username="kirby"),
        exclusive=False,
    )
    ref, _ = submit(downstream, spec)
    assert wait_end(downstream, ref).state is JobState.FAILED
