"""The shared connector contract, passed by the Slurm connector (cli interface) on the real test cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, Settings
from dssr_core.testing import ConnectorContract
from dssr_local.shell import ShellExecutor
from dssr_slurm.connector import SlurmConnector
from tests.cluster.harness import Cluster
from tests.slurm.cluster_support import slurm_env

pytestmark = pytest.mark.cluster


class TestSlurmCliContract(ConnectorContract):
    timeout = 60.0
    poll_interval = 0.3

    @pytest.fixture
    def downstream(self, slurm_cluster: Cluster, tmp_path: Path) -> Iterator[Downstream]:
        settings = Settings(slurm_env(slurm_cluster, tmp_path))
        ds = Downstream(SlurmConnector(settings), ShellExecutor(settings))
        yield ds
        ds.close()

    def make_spec(self, name: str, command: str, **kw: Any) -> JobSpec:
        kw.setdefault("exclusive", False)
        return JobSpec(name=name, command=command, identity=Identity(email="kirby@example.com"), **kw)
