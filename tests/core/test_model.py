"""The job model: validation, rc mapping, end states."""

from __future__ import annotations

import pytest

from dssr_core import BadRequest, ExitStatus, Identity, JobRef, JobSpec, JobState
from dssr_core._validate import validate_jobid, validate_name


@pytest.mark.parametrize(
    "state, rc",
    [(JobState.COMPLETED, 0), (JobState.FAILED, 1), (JobState.CANCELLED, -15), (JobState.UNKNOWN, -9)],
)
def test_end_states_map_to_the_legacy_rc(state: JobState, rc: int) -> None:
    assert state.rc == rc


def test_queued_and_running_are_not_finished_and_map_to_rc_minus_9() -> None:
    for state in (JobState.QUEUED, JobState.RUNNING):
        assert state.finished is False and state.rc == -9
    assert all(s.finished for s in JobState if s not in (JobState.QUEUED, JobState.RUNNING))


def test_the_end_state_is_the_schedulers_word_else_the_states_name() -> None:
    ref = JobRef("job-1", 1, "7")
    assert ExitStatus(ref, JobState.FAILED, detail="TIMEOUT").end_state == "TIMEOUT"
    assert ExitStatus(ref, JobState.COMPLETED).end_state == "COMPLETED"


def test_exit_status_rc_follows_its_state() -> None:
    assert ExitStatus(JobRef("job-1", 1, "7"), JobState.CANCELLED).rc == -15


@pytest.mark.parametrize("jobid", ["", "1;reboot", "$(id)", "a b", None, 1.5, True, "../x", "x" * 65])
def test_unsafe_job_ids_are_refused(jobid: object) -> None:
    with pytest.raises(BadRequest, match="not a valid job id"):
        validate_jobid(jobid)


def test_job_ids_may_be_integers_or_scheduler_neutral_strings() -> None:
    assert validate_jobid(12) == "12"
    assert validate_jobid("cluster1.42_3") == "cluster1.42_3"


@pytest.mark.parametrize("name", ["jarvice-kirby-42", "a", "A.b_c+d-e", "x" * 128])
def test_safe_job_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", " x", "x y", "x/y", "x;y", "`x`", "-x", ".x", "x" * 129, "é"])
def test_unsafe_job_names_are_refused(name: str) -> None:
    with pytest.raises(BadRequest, match="Job name"):
        validate_name(name)


@pytest.mark.parametrize(
    "field, value",
    [("nodes", 0), ("cores", 0), ("gpus", -1), ("memory_gb", -1), ("nodes", True), ("cores", "2")],
)
def test_jobspec_refuses_bad_resources(field: str, value: object) -> None:
    with pytest.raises(BadRequest, match=field):
        JobSpec(name="job-1", command="true", **{field: value})  # type: ignore[arg-type]  # a bad value on purpose


def test_jobspec_refuses_negative_overlay() -> None:
    with pytest.raises(BadRequest, match="overlay"):
        JobSpec(name="job-1", command="true", overlay_mb=-1)


def test_jobspec_needs_a_command_or_a_template() -> None:
    with pytest.raises(BadRequest, match="needs a command"):
        JobSpec(name="job-1")


def test_jobspec_validates_its_name() -> None:
    with pytest.raises(BadRequest, match="Job name"):
        JobSpec(name="bad name", command="true")


def test_jobspec_is_exclusive_by_default_and_replace_revalidates() -> None:
    spec = JobSpec(name="job-1", command="true")
    assert spec.effective_exclusive is True
    assert spec.replace(exclusive=False).effective_exclusive is False
    with pytest.raises(BadRequest):
        spec.replace(nodes=0)


def test_identity_repr_hides_the_token_and_claims() -> None:
    identity = Identity(email="kirby@example.com", token="eyJsecret.token.sig", claims={"sub": "s3cr3t"})
    assert "eyJsecret" not in repr(identity) and "s3cr3t" not in repr(identity)
