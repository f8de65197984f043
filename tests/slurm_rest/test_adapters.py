"""Each REST API adapter: request bodies from a BatchRequest, and parsing of answers recorded from real slurmrestd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dssr_core import BadRequest, ConfigError, Settings
from dssr_slurm.backend import BatchRequest
from dssr_slurm.rest import RestSettings
from dssr_slurm.rest.adapter import minutes, scontrol_text, state_name
from dssr_slurm.rest.versions import ADAPTERS, SUPPORTED_VERSIONS, adapter_for, newest_supported, offered

from .samples import VERSIONS, ids, load

ALL = list(SUPPORTED_VERSIONS)
#: versions with typed numbers and the script in ``job.script`` (v0.0.41 on)
TYPED = [v for v in ALL if v not in ("v0.0.38", "v0.0.39")]


def full_request(**changes: object) -> BatchRequest:
    fields: dict[str, object] = dict(
        name="jarvice_app-1",
        user="kirby",
        script="#!/bin/bash\necho hi\n",
        nodes=2,
        ntasks=8,
        exclusive=True,
        workdir="/scratch/users/kirby",
        output="/scratch/users/kirby/jarvice_app-1.out",
        memory_gb=4,
        gpus_per_node=2,
        time_limit="1-02:03:04",
        partition="debug",
        licenses="matlab:1",
        hold=True,
        extra={"account": "nintendo", "qos": "high"},
        environment={"A": "1"},
    )
    fields.update(changes)
    return BatchRequest(**fields)  # type: ignore[arg-type]  # each test passes each field the type BatchRequest wants


def test_v0038_body_maps_every_field_with_script_beside_job() -> None:
    body = adapter_for("v0.0.38").submit_body(full_request())
    assert body["script"] == "#!/bin/bash\necho hi\n"
    job = body["job"]
    assert job["name"] == "jarvice_app-1" and job["nodes"] == 2 and job["tasks"] == 8
    assert job["exclusive"] == "exclusive" and job["memory_per_node"] == "4G" and job["gpus_per_node"] == "2"
    assert job["time_limit"] == 24 * 60 + 2 * 60 + 4  # 1-02:03:04 -> minutes, seconds rounded up
    assert job["partition"] == "debug" and job["licenses"] == "matlab:1" and job["hold"] is True
    assert job["account"] == "nintendo" and job["qos"] == "high"
    assert job["current_working_directory"] == "/scratch/users/kirby"
    assert job["standard_output"] == "/scratch/users/kirby/jarvice_app-1.out"
    assert job["environment"]["A"] == "1" and job["environment"]["PATH"]  # an object, never empty


def test_supported_versions_are_the_table_oldest_first_each_with_its_adapter() -> None:
    assert SUPPORTED_VERSIONS == tuple(ADAPTERS)
    assert sorted(ALL, key=lambda v: int(v.rsplit(".", 1)[1])) == ALL
    for version in ALL:
        assert adapter_for(version).version == version
        assert adapter_for(version).slurm == f"/slurm/{version}"
    with pytest.raises(ValueError, match="v0.0.37"):
        adapter_for("v0.0.37")


def test_docs_name_every_supported_version() -> None:
    root = Path(__file__).resolve().parents[2]
    row = next(
        line
        for line in (root / "docs/slurmrestd.md").read_text().splitlines()
        if line.startswith("| `JARVICE_SLURMRESTD_API_VERSION`")
    )
    assert re.findall(r"`(v0\.0\.\d+)`", row) == ALL
    readme = next(
        line
        for line in (root / "README.md").read_text().splitlines()
        if line.startswith("| `JARVICE_SLURMRESTD_API_VERSION`")
    )
    assert f"`{ALL[0]}` ... `{ALL[-1]}`" in readme


@pytest.mark.parametrize("version", ["auto", *ALL])
def test_every_table_version_is_a_valid_setting(version: str) -> None:
    settings = RestSettings.from_settings(
        Settings({"JARVICE_SLURMRESTD_ADDR": "http://mg1", "JARVICE_SLURMRESTD_API_VERSION": version})
    )
    assert settings.api_version == version


def test_a_version_outside_the_table_is_a_startup_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=f"JARVICE_SLURMRESTD_API_VERSION.*{ALL[-1]}"):
        RestSettings.from_settings(
            Settings({"JARVICE_SLURMRESTD_ADDR": "http://mg1", "JARVICE_SLURMRESTD_API_VERSION": "v0.0.37"})
        )


@pytest.mark.parametrize("version", TYPED)
def test_v004x_body_maps_every_field_with_typed_numbers(version: str) -> None:
    body = adapter_for(version).submit_body(full_request())
    job = body["job"]
    script = job["script"] if version >= "v0.0.41" else body["script"]
    assert script == "#!/bin/bash\necho hi\n"
    assert ("script" in body) == (version == "v0.0.40")
    assert job["minimum_nodes"] == job["maximum_nodes"] == 2 and job["tasks"] == 8
    assert job["shared"] == ["none"]
    assert job["memory_per_node"] == {"set": True, "infinite": False, "number": 4096}
    assert job["tres_per_node"] == "gres/gpu:2"
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 1564}
    assert job["partition"] == "debug" and job["licenses"] == "matlab:1" and job["hold"] is True
    assert job["account"] == "nintendo" and job["qos"] == "high"
    assert "A=1" in job["environment"] and any(e.startswith("PATH=") for e in job["environment"])
    assert job["current_working_directory"] == "/scratch/users/kirby"


@pytest.mark.parametrize("version", ALL)
def test_unmappable_extra_flag_is_refused_naming_the_flag(version: str) -> None:
    with pytest.raises(BadRequest, match="--export"):
        adapter_for(version).submit_body(full_request(extra={"export": "ALL"}))


@pytest.mark.parametrize("version", TYPED)
def test_numeric_extra_flag_needs_a_number(version: str) -> None:
    job = adapter_for(version).submit_body(full_request(extra={"cpus-per-task": "4"}))["job"]
    assert job["cpus_per_task"] == 4
    with pytest.raises(BadRequest, match="cpus-per-task"):
        adapter_for(version).submit_body(full_request(extra={"cpus-per-task": "four"}))


@pytest.mark.parametrize(
    "text, expected",
    [("30", 30), ("1:30", 2), ("01:00:00", 60), ("2-00", 2880), ("1-01:30", 1530), ("0:00:01", 1), ("UNLIMITED", None)],
)
def test_time_limits_become_minutes(text: str, expected: int | None) -> None:
    assert minutes(text) == expected


def test_unknown_state_flags_read_as_the_base_state() -> None:
    """v0.0.44 added the flag EXPEDITING; a flag this server does not know leaves the base state."""
    assert state_name(["RUNNING", "EXPEDITING"]) == "RUNNING"
    assert state_name(["PENDING", "REQUEUED"]) == "REQUEUED"


def test_bad_time_limit_is_refused() -> None:
    with pytest.raises(BadRequest, match="Time limit"):
        minutes("an hour")


def test_optional_fields_are_left_out_when_unset() -> None:
    plain = full_request(
        memory_gb=0,
        gpus_per_node=0,
        time_limit=None,
        partition=None,
        licenses=None,
        hold=False,
        exclusive=False,
        extra={},
    )
    for version in ALL:
        job = adapter_for(version).submit_body(plain)["job"]
        for key in (
            "memory_per_node",
            "gpus_per_node",
            "tres_per_node",
            "time_limit",
            "partition",
            "licenses",
            "hold",
            "exclusive",
            "shared",
        ):
            assert key not in job, (version, key)


# --- recorded answers ------------------------------------------------------------------------

needs_samples = pytest.mark.skipif(not VERSIONS, reason="no recorded samples (run tests/slurm_rest/capture_samples.py)")


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_queue_keeps_held_and_running_jobs_and_drops_finished_ones(version: str) -> None:
    adapter, known = adapter_for(version), ids(version)
    jobs = {j.jobid: j for j in adapter.queue(load(version, "jobs").body)}
    held, running = jobs[known["held"]], jobs[known["running"]]
    assert held.state == "PENDING" and held.nodes == () and held.elapsed == "00:00:00"
    assert held.reason == "JobHeldUser" and held.user == "kirby" and held.name.startswith("jarvice_")
    assert running.state == "RUNNING" and running.nodes and running.elapsed != "00:00:00"
    assert known["fails"] not in jobs  # FAILED: out of the queue
    assert all(j.name.startswith("jarvice_") for j in jobs.values())


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_accounting_records_states_and_exit_codes(version: str) -> None:
    adapter, known = adapter_for(version), ids(version)
    records = {r.jobid: r for r in (adapter.acct(item) for item in load(version, "acct").body["jobs"])}
    assert records[known["held"]].state == "COMPLETED" and records[known["held"]].exit_code == "0:0"
    assert records[known["held"]].elapsed != "00:00:00"
    assert records[known["running"]].exit_code.endswith(":15")  # ended by SIGTERM
    assert records[known["fails"]].state == "FAILED"
    assert records[known["fails"]].user == "kirby" and records[known["fails"]].name.endswith("fails")


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_show_text_reads_like_scontrol(version: str) -> None:
    adapter, known = adapter_for(version), ids(version)
    text = scontrol_text(adapter.show_fields(load(version, "job_running").body["jobs"][0]))
    assert text.startswith(f"JobId={known['running']} ")
    assert "JobState=RUNNING" in text and "UserId=kirby" in text and "Partition=debug" in text


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_ping_answer_says_slurmctld_is_up(version: str) -> None:
    assert adapter_for(version).pinged(load(version, "ping").body)
    assert not adapter_for(version).pinged({"pings": []})


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_auto_picks_the_newest_version_offered(version: str) -> None:
    openapi = load(version, "openapi").body
    assert version in offered(openapi)
    # 22.05 offers v0.0.36-38, 24.11 v0.0.40-42, 26.05 v0.0.42-45
    newest = {"v0.0.36": "v0.0.38", "v0.0.40": "v0.0.42", "v0.0.42": "v0.0.45"}[offered(openapi)[0]]
    assert newest_supported(openapi, "x") == newest


@pytest.mark.parametrize("version", ALL)
def test_release_body_is_wrapped_in_v0039_only(version: str) -> None:
    """Tried on the clusters: 22.05 (v0.0.38) and 24.11/26.05 (v0.0.40+) take the flat body; a wrapped
    body is accepted with HTTP 200 by 24.11 and changes nothing (the job stays held)."""
    expected = {"job": {"hold": False}} if version == "v0.0.39" else {"hold": False}
    assert adapter_for(version).release_body() == expected


def _raw_seconds(value: object) -> object:
    """A recorded time as the version wrote it: a plain int (v0.0.38) or ``{"set", "number"}`` (v0.0.40 on)."""
    return value["number"] if isinstance(value, dict) else value


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_times_are_read_from_the_queue_and_from_accounting_in_every_version(version: str) -> None:
    adapter, known = adapter_for(version), ids(version)
    items = {str(item["job_id"]): item for item in load(version, "jobs").body["jobs"]}
    jobs = {j.jobid: j for j in adapter.queue(load(version, "jobs").body)}
    running, held = jobs[known["running"]], jobs[known["held"]]
    raw = items[known["running"]]
    assert running.submitted == _raw_seconds(raw["submit_time"]) and running.started == _raw_seconds(raw["start_time"])
    assert running.submitted is not None and running.started is not None and running.submitted <= running.started
    assert held.submitted == _raw_seconds(items[known["held"]]["submit_time"]) and held.submitted is not None
    for item in load(version, "acct").body["jobs"]:
        record, times = adapter.acct(item), item["time"]
        assert (record.submitted, record.started, record.ended) == tuple(
            float(t) if t else None for t in (times["submission"], times["start"], times["end"])
        )
    fails = adapter.acct(next(i for i in load(version, "acct").body["jobs"] if str(i["job_id"]) == known["fails"]))
    assert fails.submitted is not None and fails.started is not None and fails.ended is not None
    assert fails.submitted <= fails.started <= fails.ended
