"""What a job asks of Grid Engine (no cluster needed: the connector opens no connection until used)."""

from __future__ import annotations

from typing import Any

import pytest

from dssr_core import BadRequest, ConfigError, JobSpec, Settings
from dssr_gridengine.connector import GridEngineConnector

BASE = {"JARVICE_GE_CLUSTER_ADDR": "127.0.0.1", "JARVICE_USERS_ID_MAPPING_FILE": "/nonexistent.yaml"}


def request(spec: JobSpec, **env: str) -> Any:
    conn = GridEngineConnector(Settings({**BASE, **env}))
    try:
        return conn._request(spec, "jarvice_" + spec.name, "/s/out", "/s/dir")
    finally:
        conn.close()


def test_every_job_runs_in_the_parallel_environment_with_its_limits() -> None:
    spec = JobSpec(name="j", command="true", nodes=2, walltime="1-00:00:10", memory_gb=4, partition="big.q")
    options = request(spec, JARVICE_GE_PE="mpi").options()
    assert options[options.index("-pe") :] == ["-pe", "mpi", "2", "-q", "big.q", "-l", "h_rt=86410,h_vmem=4G"]
    assert ["-h", "-N", "jarvice_j"] == options[3:6] and "-w" in options


def test_gpus_need_a_site_resource() -> None:
    with pytest.raises(BadRequest, match="GPU"):
        request(JobSpec(name="j", command="true", gpus=1))
    assert "gpu=2" in request(JobSpec(name="j", command="true", gpus=2), JARVICE_GE_GPU_RESOURCE="gpu").options()


@pytest.mark.parametrize(
    "kw",
    [
        {"licenses": "matlab:1"},
        {"scheduler_flags": {"pe": "x"}},
        {"scheduler_flags": {"N": "x"}},
        {"scheduler_flags": {"a b": "x"}},
    ],
)
def test_what_the_connector_sets_or_grid_engine_lacks_is_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        request(JobSpec(name="j", command="true", **kw))


def test_an_extra_flag_becomes_a_qsub_option() -> None:
    options = request(JobSpec(name="j", command="true", scheduler_flags={"a": "203001010000"})).options()
    assert options[-2:] == ["-a", "203001010000"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("JARVICE_GE_PE", "a;b"), ("JARVICE_GE_ACCOUNTING_FILE", "rel/path"), ("JARVICE_GE_CLUSTER_PORT", "0")],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        GridEngineConnector(Settings({**BASE, name: value}))


def test_the_connector_is_registered_as_gridengine() -> None:
    from dssr_core import load_connector

    conn = load_connector("gridengine", Settings(BASE))
    assert isinstance(conn, GridEngineConnector)
    conn.close()
