"""The shared connector contract, passed by the Grid Engine connector on the real Grid Engine 8.1.9 cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, Settings
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
