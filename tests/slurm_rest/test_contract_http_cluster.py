"""The shared connector contract, passed by the Slurm connector with JARVICE_SLURM_INTERFACE=http
on the real slurmrestd: 22.05 (v0.0.38, through the SSH connection), 24.11 (v0.0.42, direct) and 26.05
(v0.0.45, through the SSH connection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core import Downstream, Identity, JobSpec, Settings
from dssr_core.testing import ConnectorContract
from dssr_local.shell import ShellExecutor
from dssr_slurm.connector import SlurmConnector
from tests.cluster import Cluster

from .test_backend_cluster import rest_env

pytestmark = pytest.mark.cluster


class _HttpContract(ConnectorContract):
    timeout = 60.0
    poll_interval = 0.3
    cluster: Cluster

    def open(self, cluster: Cluster, tmp_path: Path, version: str, via_ssh: str) -> Downstream:
        self.cluster = cluster
        settings = Settings(rest_env(cluster, tmp_path, version, via_ssh))
        return Downstream(SlurmConnector(settings), ShellExecutor(settings))

    def make_spec(self, name: str, command: str, **kw: Any) -> JobSpec:
        kw.setdefault("exclusive", False)
        user = self.cluster.users["kirby"]
        token = self.cluster.idp.mint(email=user.email, user=user.name)
        identity = Identity(
            email=user.email, username=user.name, claims={"sun": user.name, "email": user.email}, token=token
        )
        return JobSpec(name=name, command=command, identity=identity, **kw)


class TestSlurmHttp2205Contract(_HttpContract):
    @pytest.fixture
    def downstream(self, slurm_cluster: Cluster, tmp_path: Path) -> Iterator[Downstream]:
        ds = self.open(slurm_cluster, tmp_path, "v0.0.38", "true")
        yield ds
        ds.close()


class TestSlurmHttp2411Contract(_HttpContract):
    @pytest.fixture
    def downstream(self, slurm2411_cluster: Cluster, tmp_path: Path) -> Iterator[Downstream]:
        ds = self.open(slurm2411_cluster, tmp_path, "v0.0.42", "false")
        yield ds
        ds.close()


class TestSlurmHttp2605Contract(_HttpContract):
    @pytest.fixture
    def downstream(self, slurm2605_cluster: Cluster, tmp_path: Path) -> Iterator[Downstream]:
        ds = self.open(slurm2605_cluster, tmp_path, "v0.0.45", "true")
        yield ds
        ds.close()
