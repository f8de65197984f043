"""The shared connector contract, passed by the Grid Engine connector on the real Grid Engine 8.1.9 cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, JobState, Settings
from dssr_core.testing import ConnectorContract
from dssr_gridengine.connector import GridEngineConnector
from dssr_local.shell import ShellExecutor
from tests.cluster.gridengine import GECluster
from tests.gridengine.support import ge_env

pytestmark = pytest.mark.cluster


class TestGridEngineContract(ConnectorContract):
    timeout = 60.0
    poll_interval = 0.3
    #: Grid Engine ids stop at 9,999,999 (a bigger id is refused as not a Grid Engine id)
    unknown_jobid = "9999990"

    @pytest.fixture
    def downstream(self, gridengine_cluster: GECluster, tmp_path: Path) -> Iterator[Downstream]:
        settings = Settings(ge_env(gridengine_cluster, tmp_path))
        ds = Downstream(GridEngineConnector(settings), ShellExecutor(settings))
        yield ds
        ds.close()

    def make_spec(self, name: str, command: str, **kw: Any) -> JobSpec:
        kw.setdefault("exclusive", False)
        return JobSpec(name=name, command=command, identity=Identity(email="kirby@example.com"), **kw)

    def test_a_queued_job_is_held_and_released_and_its_output_read_by_offset(self, downstream: Downstream) -> None:
        """Beyond the contract: the batch base's hold (``qhold -h u``), release and output by offset, and the
        times accounting gives an ended job."""
        start = time.strftime("%Y%m%d%H%M", time.localtime(time.time() + 3600))
        ref = self.submit(downstream, "echo offset-hello", scheduler_flags={"a": start})  # qsub -a: not before
        downstream.hold(ref)
        held = self.wait_for("the hold", lambda: (s := downstream.runstatus(ref)) is not None and "h" in s.detail and s)
        assert held.state is JobState.QUEUED
        downstream.release(ref)
        freed = self.wait_for("the release", lambda: (s := downstream.runstatus(ref)) and "h" not in s.detail and s)
        assert freed.state is JobState.QUEUED  # still waiting for its start time
        downstream.terminate(ref)
        ran = self.submit(downstream, "echo offset-hello")
        end = self.wait_end(downstream, ran)
        assert end.exit_code == 0 and end.submitted and end.started and end.ended
        assert end.submitted <= end.started <= end.ended
        chunk = downstream.read_output(ran, 7)
        assert chunk.data.startswith(b"hello") and chunk.offset == 7 + len(chunk.data)
