"""The shared connector contract, passed by the Slurm connector (cli interface) on the real test clusters:
22.05 and 26.05."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, Settings
from dssr_core.testing import ConnectorContract
from dssr_local.shell import ShellExecutor
from dssr_slurm.connector import SlurmConnector
from tests.cluster import Cluster
from tests.slurm.cluster_support import slurm_env

pytestmark = pytest.mark.cluster


def _open(cluster: Cluster, tmp_path: Path) -> Downstream:
    settings = Settings(slurm_env(cluster, tmp_path))
    return Downstream(SlurmConnector(settings), ShellExecutor(settings))


class TestSlurmCliContract(ConnectorContract):
    timeout = 60.0
    poll_interval = 0.3

    @pytest.fixture
    def downstream(self, slurm_cluster: Cluster, tmp_path: Path) -> Iterator[Downstream]:
        ds = _open(slurm_cluster, tmp_path)
        yield ds
        ds.close()

    def make_spec(self, name: str, command: str, **kw: Any) -> JobSpec:
        kw.setdefault("exclusive", False)
        return JobSpec(name=name, command=command, identity=Identity(email="kirby@example.com"), **kw)


class TestSlurm2605CliContract(TestSlurmCliContract):
    @pytest.fixture
    def downstream(self, slurm2605_cluster: Cluster, tmp_path: Path) -> Iterator[Downstream]:
        ds = _open(slurm2605_cluster, tmp_path)
        yield ds
        ds.close()
