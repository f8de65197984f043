"""Hostile input at the library's door: every rule of dssr_core.validate, each case of issue 12."""

from __future__ import annotations

import json
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dssr_core import BadRequest, Connector, JobSpec, LaunchContext, Settings, fill_template, redact_template
from dssr_core._errors import MAX_MESSAGE, DssrError
from dssr_core._upstream import parse_template, template_keys
from dssr_core._validate import validate_jobid, validate_name, validate_number
from dssr_local.shell import ShellExecutor
from dssr_server.wire import parse_submission
from tests.helpers import encode, legacy_template, submit_args

HUGE = 10**30
ABOVE_INT64 = "9999999999999999999"


def submission(**changes: object) -> dict[str, object]:
    args = submit_args("job-1", 1, legacy_template(), key="shell")
    args.update(changes)
    return args


# -- 1. non-ASCII where base64 is expected ----------------------------------------


@pytest.mark.parametrize("value", ["é", "aGVsbG8=é", "\u0661\u0662\u0663\u0664"])
def test_non_ascii_text_as_a_base64_template_is_a_bad_request(value: str) -> None:
    with pytest.raises(BadRequest, match="not valid base64"):
        parse_submission(submission(hpc_script={"shell": value}), "shell")


def test_non_ascii_text_as_a_base64_registry_secret_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="JOBOBJ_CTRSECRET"):
        parse_template(legacy_template(extra={"JOBOBJ_CTRSECRET": "é"}), 1, "job-1", 1)


# -- 2. digits other than ASCII ---------------------------------------------------


@pytest.mark.parametrize("digits", ["²", "\u0661", "\u0662\u0663", "１"])
def test_digits_other_than_ascii_are_refused_for_nodes_number_and_lines(digits: str) -> None:
    with pytest.raises(BadRequest, match="nodes must be an integer"):
        parse_submission(submission(nodes=digits), "shell")
    with pytest.raises(BadRequest, match="Job number"):
        validate_number(digits)
    with pytest.raises(BadRequest, match="lines must be an integer"):
        Connector.check_lines(digits)


@pytest.mark.parametrize("key", ["JARVICE_CPU_CORES", "JOBOBJ_GPUS", "JOBOBJ_RAM", "JOBOBJ_APPDEFVERSION"])
def test_template_integers_take_ascii_digits_only(key: str) -> None:
    with pytest.raises(BadRequest, match=key):
        parse_template(legacy_template(extra={key: "\u0662"}), 1, "job-1", 1)


def test_an_overlay_of_other_digits_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="overlay"):
        parse_template(legacy_template(extra={"JOBOBJ_DEVICES": '["overlay=\u0662"]'}), 1, "job-1", 1)


# -- 3. integers out of range -----------------------------------------------------


@pytest.mark.parametrize("jobid", [ABOVE_INT64, 2**63, "1" * 40])
def test_a_job_id_of_2_to_the_63_or_more_is_not_a_job_id(jobid: object) -> None:
    with pytest.raises(BadRequest, match="not a valid job id"):
        validate_jobid(jobid)


def test_the_largest_64_bit_id_is_still_a_job_id() -> None:
    assert validate_jobid(str(2**63 - 1)) == str(2**63 - 1)


@pytest.mark.parametrize("field", ["number", "nodes"])
@pytest.mark.parametrize("value", [HUGE, str(HUGE), 2**63, -1])
def test_number_and_nodes_out_of_range_are_bad_requests(field: str, value: object) -> None:
    with pytest.raises(BadRequest, match="must be an integer from"):
        parse_submission(submission(**{field: value}), "shell")


def test_a_job_spec_refuses_numbers_out_of_range() -> None:
    with pytest.raises(BadRequest):
        JobSpec(name="big", nodes=HUGE, command="true")
    with pytest.raises(BadRequest):
        JobSpec(name="big", number=HUGE, command="true")


# -- 4. whole-string matching -----------------------------------------------------


@pytest.mark.parametrize("name", ["nl-test\n", "nl-test\r", "a\nb", "nl-test\x00"])
def test_a_name_with_a_trailing_newline_is_not_a_name(name: str) -> None:
    with pytest.raises(BadRequest, match="is not allowed"):
        validate_name(name)


@pytest.mark.parametrize("jobid", ["6\n", "6\r\n", "\n6"])
def test_a_job_id_with_a_newline_is_not_a_job_id(jobid: str) -> None:
    with pytest.raises(BadRequest, match="not a valid job id"):
        validate_jobid(jobid)


# -- 7. the template is no format string ------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "{DOWNSTREAM_PARAMETERS:>20000000}",
        "{DOWNSTREAM_PARAMETERS!r}",
        "{DOWNSTREAM_PARAMETERS.x}",
        "{DOWNSTREAM_PARAMETERS[0]}",
        "{0}",
        "{}",
    ],
)
def test_format_specs_and_other_fields_are_refused(field: str) -> None:
    text = legacy_template().replace("{DOWNSTREAM_PARAMETERS}", "{DOWNSTREAM_PARAMETERS}\n" + field)
    with pytest.raises(BadRequest, match="braces other than"):
        parse_template(text, 1, "job-1", 1)


def test_a_template_with_the_field_twice_is_refused() -> None:
    text = legacy_template().replace(
        "{DOWNSTREAM_PARAMETERS}", "{DOWNSTREAM_PARAMETERS}\n{DOWNSTREAM_PARAMETERS}" * 4500
    )
    with pytest.raises(BadRequest, match="9000 \\{DOWNSTREAM_PARAMETERS\\} fields: it must have one"):
        parse_template(text, 1, "job-1", 1)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(alphabet="{}DOWNSTREAM_PARAMETERSab:>0!\n", max_size=60), st.text(max_size=40))
def test_filling_never_makes_more_than_the_template_and_the_parameters(text: str, parameters: str) -> None:
    try:
        filled = fill_template(text, parameters)
    except BadRequest:
        return
    assert len(filled) <= len(text) + len(parameters)
    # where str.format would have worked the same way, the result is the same
    assert filled == text.format(DOWNSTREAM_PARAMETERS=parameters)


def test_doubled_braces_around_the_field_stay_literal_as_with_str_format() -> None:
    text = "{{DOWNSTREAM_PARAMETERS}}\n{{{DOWNSTREAM_PARAMETERS}}}"
    assert fill_template(text, "P") == text.format(DOWNSTREAM_PARAMETERS="P") == "{DOWNSTREAM_PARAMETERS}\n{P}"


# -- 8. bounded echo --------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda big: validate_name(big),
        lambda big: validate_jobid(big),
        lambda big: validate_number(big),
        lambda big: parse_submission(submission(nodes=big), "shell"),
        lambda big: parse_submission(submission(hpc_script={big: "x"}), "shell"),
        lambda big: parse_template(legacy_template(extra={"JOBOBJ_WALLTIME": big}), 1, "job-1", 1),
        lambda big: parse_template(legacy_template(extra={"JOBOBJ_DEVICES": json.dumps([big])}), 1, "job-1", 1),
        lambda big: Connector.check_lines(big),
    ],
)
def test_a_huge_value_is_not_echoed_whole_in_the_error(call: Callable[[str], object]) -> None:
    big = "x" * 1_000_000
    with pytest.raises(BadRequest) as caught:
        call(big)
    assert len(str(caught.value)) < 600


def test_no_error_message_exceeds_the_bound() -> None:
    assert len(DssrError("y" * 10**6).message) <= MAX_MESSAGE + 40


# -- 11. one line-splitting rule for keys and redaction ----------------------------

SEPARATORS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", " ", "\t", ": "]
SECRET = '{{"server": "r.example", "username": "u", "password": "hunter2-pw"}}'


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(st.sampled_from(SEPARATORS), max_size=3), export=st.booleans())
def test_a_secret_the_parser_reads_is_never_left_in_the_script(before: list[str], export: bool) -> None:
    line = "".join(before) + ("export " if export else "") + "JOBOBJ_DOCKER_SECRET=" + SECRET
    text = legacy_template().replace("JOBOBJ_USER=kirby", "JOBOBJ_USER=kirby\n" + line)
    spec = parse_template(text, 1, "job-1", 1)
    assert spec.template is not None
    script = ShellExecutor(Settings({})).launch(spec, CONTEXT).node_script
    if spec.template.docker_secret:
        assert "hunter2-pw" not in script and "hunter2-pw" not in redact_template(text)


def test_a_secret_after_a_form_feed_is_not_a_credential() -> None:
    text = legacy_template().replace("JOBOBJ_USER=kirby", "JOBOBJ_USER=kirby\n: \x0cJOBOBJ_DOCKER_SECRET=" + SECRET)
    spec = parse_template(text, 1, "job-1", 1)
    assert spec.template is not None and spec.template.docker_secret == {}


def test_keys_are_read_from_lines_split_on_newline_only() -> None:
    keys = template_keys("JOBOBJ_A=1\x0cJOBOBJ_B=2\u2028JOBOBJ_C=3\nJOBOBJ_D=4\r\n  export JOBOBJ_E=5")
    assert keys == {"JOBOBJ_A": "1\x0cJOBOBJ_B=2\u2028JOBOBJ_C=3", "JOBOBJ_D": "4", "JOBOBJ_E": "5"}


CONTEXT = LaunchContext(
    scratch_root="/s", cluster_user="u", user_scratch="/s/u", job_dir="/s/u/j", secrets_file="/s/u/j/.s"
)


def test_non_ascii_text_inside_valid_base64_is_still_read() -> None:
    assert (
        parse_submission(submission(hpc_script={"shell": encode(legacy_template("echo é"))}), "shell").command
        == "echo é"
    )
