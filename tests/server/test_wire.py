"""The legacy wire format (dssr_server.wire): the form's args -> the job model, the model -> the answers."""

from __future__ import annotations

import json

import pytest

from dssr_core import BadRequest, ExitStatus, FileEntry, JobInfo, JobRef, JobState, JobStatus
from dssr_server import wire


def test_a_job_ref_ignores_extra_keys_and_accepts_string_numbers() -> None:
    ref = wire.job_ref({"name": "jarvice-kirby-42", "number": "42", "jobid": 1234, "force": True, "nodes": 2})
    assert ref == JobRef("jarvice-kirby-42", 42, "1234")


@pytest.mark.parametrize("missing", ["name", "number", "jobid"])
def test_a_job_ref_without_a_key_is_refused(missing: str) -> None:
    args = {"name": "job-1", "number": 1, "jobid": "2"}
    del args[missing]
    with pytest.raises(BadRequest, match=repr(missing)):
        wire.job_ref(args)


def test_running_and_queued_lists_are_name_and_jobid_pairs() -> None:
    jobs = [
        JobStatus(JobRef("jarvice-a-1", 1, "11"), JobState.RUNNING, ("n1",)),
        JobStatus(JobRef("jarvice-b-2", 2, "12"), JobState.QUEUED),
    ]
    assert json.dumps(wire.job_list(jobs)) == '[["jarvice-a-1", "11"], ["jarvice-b-2", "12"]]'
    assert wire.job_list([]) == []


def test_runstatus_gives_nodes_elapsed_and_the_request_prefix_or_four_nulls() -> None:
    ref = JobRef("jarvice-kirby-42", 42, "1234")
    status = JobStatus(ref, JobState.RUNNING, ("node1", "node2"), "26:00:00")
    assert wire.runstatus_answer(ref, status) == [["node1", "node2"], "26:00:00", "jarvice-kirby-42/42/1234", None]
    assert wire.runstatus_answer(ref, None) == [None, None, None, None]


def test_exitstatus_gives_rc_elapsed_output_and_the_termination_line_naming_the_schedulers_state() -> None:
    ref = JobRef("job-1", 1, "7")
    end = ExitStatus(ref, JobState.FAILED, "00:01:00", output="oops\n", detail="TIMEOUT")
    assert wire.exitstatus_answer(end) == [
        1,
        "00:01:00",
        ["oops\n", "<< termination state: TIMEOUT -- see STDOUT for job errors >>"],
    ]
    assert ExitStatus(ref, JobState.COMPLETED).termination_line == (
        "<< termination state: COMPLETED -- see STDOUT for job errors >>"
    )


def test_info_has_the_four_keys_with_empty_strings_until_known() -> None:
    assert wire.info_answer(JobInfo()) == {"about": "", "help": "", "url": "", "actions": {}}
    assert list(wire.info_answer(JobInfo(url="https://x/", help="<p>"))) == ["about", "help", "url", "actions"]
    assert wire.info_answer(JobInfo(url="https://x/", help="<p>"))["url"] == "https://x/"


@pytest.mark.parametrize(
    "entry, details, line",
    [
        (FileEntry("project", True, 1, 4096), False, "/data/project/"),
        (FileEntry("/project/run.sh", False, 1732530012, 8), True, "1732530012 8 /data/project/run.sh"),
    ],
)
def test_pvcls_lines_are_under_data_with_folders_ending_in_a_slash(entry: FileEntry, details: bool, line: str) -> None:
    assert wire.pvcls_line(entry, details) == line


@pytest.mark.parametrize(
    "raw, message",
    [
        (None, "The request has no form field 'args': send args=<JSON object>, form-encoded."),
        ("{", "The form field 'args' is not valid JSON."),
        ("[1]", "The form field 'args' must be a JSON object, not a list."),
        ("null", "The form field 'args' must be a JSON object, not null."),
    ],
)
def test_args_that_are_not_a_json_object_are_refused_as_docs_api_says(raw: str | None, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        wire.args_object(raw)
    assert info.value.message == message


@pytest.mark.parametrize(
    "value, force",
    [
        (True, True),
        (1, True),
        ("true", True),
        (" Yes ", True),
        ("1", True),
        (False, False),
        (0, False),
        (None, False),
        ("no", False),
        (2, False),
        ([], False),
    ],
)
def test_force_is_true_only_for_the_usual_true_words(value: object, force: bool) -> None:
    assert wire.truthy(value) is force


def test_request_query_defaults() -> None:
    assert wire.tail_lines(wire.query({})) == 100
    assert wire.tail_lines(wire.query({"qs": {"lines": ["50"]}})) == 50
    assert wire.pvcls_request(wire.query({"qs": None})) == ("/", False)
    assert wire.pvcls_request({"path": ["/project"], "details": ["true"]}) == ("/project", True)
    with pytest.raises(BadRequest, match="qs.lines must be a list of strings"):
        wire.tail_lines({"lines": [{"x": 1}]})
