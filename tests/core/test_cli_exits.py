"""The dssr command as a Unix tool: its exit status, its messages, --version, --help, closed pipes."""

from __future__ import annotations

import importlib.metadata
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import dssr_core
from dssr_core import Downstream, JobRef, JobSpec, JobState, Settings
from dssr_core.cli import build_parser, main

JOB_ACTIONS = ["status", "exitstatus", "wait", "terminate", "release", "tail", "events"]


def settings(tmp_path: Path) -> Settings:
    return Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state"), "JARVICE_LOCAL_KILL_GRACE": "1"})


def dssr(tmp_path: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--connector", "local", "--executor", "shell", *argv], out=out, settings=settings(tmp_path))
    return code, out.getvalue()


def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JARVICE_", "WAITRESS_"))}
    return {**clean, "JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state")}


def run(tmp_path: Path, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", *argv],
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
        timeout=60,
        **kwargs,
    )


@pytest.mark.parametrize("action", JOB_ACTIONS)
def test_every_job_command_on_an_unknown_job_exits_1_saying_so(tmp_path: Path, action: str) -> None:
    result = run(tmp_path, action, "--name", "ghost", "4242")
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == "dssr: job 4242 (ghost) is unknown to this downstream\n"


@pytest.mark.parametrize("action", JOB_ACTIONS)
def test_every_job_command_on_another_jobs_id_exits_1_naming_the_mismatch(tmp_path: Path, action: str) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "real", "--", "sleep 30")[1].strip()
    try:
        result = run(tmp_path, action, "--name", "other", jobid)
        assert result.returncode == 1, result
        assert result.stdout == "" and result.stderr.startswith("dssr: ") and "Traceback" not in result.stderr
        assert "other" in result.stderr
    finally:
        dssr(tmp_path, "terminate", "--name", "real", "--force", jobid)


def test_submit_of_a_name_taken_exits_1_naming_the_job_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = dssr(tmp_path, "submit", "--name", "hello", "--", "echo first")
    jobid = out.strip()
    assert code == 0 and dssr(tmp_path, "wait", "--name", "hello", "--timeout", "20", jobid)[0] == 0
    capsys.readouterr()
    code, out = dssr(tmp_path, "submit", "--name", "hello", "--", "echo", "other")
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert err.startswith(f"dssr: a job named 'hello' exists already: job {jobid}; nothing was submitted")
    text = dssr(tmp_path, "exitstatus", "--name", "hello", jobid)[1]
    assert "first" in text and "other" not in text
    # once collected, the name is free again
    assert dssr(tmp_path, "exitstatus", "--collect", "--name", "hello", jobid)[0] == 0
    code, out = dssr(tmp_path, "submit", "--name", "hello", "--", "echo", "other")
    assert code == 0 and out.strip() != jobid
    assert "other" in dssr(tmp_path, "wait", "--name", "hello", "--timeout", "20", out.strip())[1]


def test_wait_prints_the_end_as_exitstatus_does(tmp_path: Path) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "waited", "--", "sleep 1; echo done-now")[1].strip()
    started = time.monotonic()
    code, out = dssr(tmp_path, "wait", "--name", "waited", "--timeout", "30", jobid)
    assert code == 0 and time.monotonic() - started >= 0.9
    assert out.startswith("done-now\n") and "rc=0" in out and "COMPLETED" in out
    assert dssr(tmp_path, "exitstatus", "--name", "waited", jobid)[1] == out  # nothing collected by wait


def test_wait_past_its_timeout_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "slow", "--", "sleep 30")[1].strip()
    started = time.monotonic()
    code, out = dssr(tmp_path, "wait", "--name", "slow", "--timeout", "1", jobid)
    assert code == 1 and out == "" and 0.9 <= time.monotonic() - started < 10
    assert capsys.readouterr().err == f"dssr: Job {jobid} (slow) has not ended within 1 s.\n"
    assert dssr(tmp_path, "terminate", "--name", "slow", jobid)[0] == 0


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "nan", "inf", "²", "1.5.2", ""])
def test_wait_timeout_must_be_seconds(tmp_path: Path, value: str) -> None:
    result = run(tmp_path, "wait", "--name", "x", "--timeout", value, "1")
    assert result.returncode == 2 and "is not a number of seconds >= 0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--walltime", "abc"], "'abc' is not a time limit"),
        (["--walltime", "1:2:3:4"], "'1:2:3:4' is not a time limit"),
        (["--partition", "a b"], "'a b' is not a partition name"),
        (["--partition", "x;reboot"], "'x;reboot' is not a partition name"),
    ],
)
def test_submit_values_must_be_what_they_claim(tmp_path: Path, argv: list[str], words: str) -> None:
    result = run(tmp_path, "submit", "--name", "claims", *argv, "--", "true")
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists() or run(tmp_path, "queued").stdout == ""


def test_exitstatus_of_a_running_job_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "busy", "--", "sleep 30")[1].strip()
    time.sleep(0.5)
    capsys.readouterr()
    assert dssr(tmp_path, "exitstatus", "--name", "busy", jobid) == (1, "")
    assert "has not finished yet" in capsys.readouterr().err
    assert dssr(tmp_path, "status", "--name", "busy", jobid)[1].startswith(("running ", "queued "))
    assert dssr(tmp_path, "terminate", "--name", "busy", jobid)[0] == 0


def test_terminate_or_release_of_an_ended_job_exits_1_and_status_says_how_it_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "over", "--", "exit 3")[1].strip()
    dssr(tmp_path, "wait", "--name", "over", "--timeout", "20", jobid)
    capsys.readouterr()
    assert dssr(tmp_path, "terminate", "--name", "over", jobid) == (1, "")
    assert capsys.readouterr().err == f"dssr: job {jobid} (over) has ended already (failed)\n"
    assert dssr(tmp_path, "release", "--name", "over", jobid) == (1, "")
    assert "has ended (failed): nothing to release" in capsys.readouterr().err
    code, out = dssr(tmp_path, "status", "--name", "over", jobid)
    assert code == 0 and out.startswith("failed ")


def test_tail_of_a_known_job_without_output_exits_1_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "quiet", "--hold", "--", "true")[1].strip()
    assert dssr(tmp_path, "tail", "--name", "quiet", jobid) == (1, "")
    assert capsys.readouterr().err == f"dssr: Job {jobid} has no output yet.\n"
    assert dssr(tmp_path, "terminate", "--name", "quiet", jobid)[0] == 0


def test_the_library_waits_for_a_job(tmp_path: Path) -> None:
    downstream = Downstream.from_settings(settings(tmp_path), connector="local", executor="shell")
    try:
        jobid = downstream.submit(JobSpec(name="lib", command="sleep 1; echo from-the-library")).jobid
        ref = JobRef("lib", 0, jobid)
        with pytest.raises(dssr_core.ClusterError, match="has not ended within 0.2 s"):
            downstream.wait(ref, timeout=0.2)
        result = downstream.wait(ref, timeout=30)
        assert result.state is JobState.COMPLETED and result.output == "from-the-library\n"
        assert downstream.wait(JobRef("nobody", 0, "999"), timeout=0).state is JobState.UNKNOWN
        for bad in (-1.0, float("nan")):
            with pytest.raises(dssr_core.BadRequest, match="timeout"):
                downstream.wait(ref, timeout=bad)
    finally:
        downstream.close()


def test_version_is_the_distributions(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    version = importlib.metadata.version("jarvice-dssr")
    assert result.returncode == 0 and result.stdout == f"dssr (jarvice-dssr) {version}\n"
    assert dssr_core.__version__ == version


def test_every_subcommands_help_says_what_it_does(tmp_path: Path) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "action")
    names = sorted(sub.choices)  # type: ignore[arg-type]  # the subcommands' action: its choices are the subparsers by name
    assert {"submit", "wait", "doctor", "running", *JOB_ACTIONS} <= set(names)
    for name in names:
        result = run(tmp_path, name, "--help")
        assert result.returncode == 0, name
        description = result.stdout.split("\n\n")[1]
        assert len(description.split()) >= 4 and description.rstrip().endswith("."), (name, description)
        assert "exit status: 0" in result.stdout, name


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["plugins"], ["running"], ["submit", "--name", "p", "--", "true"]]
)
def test_a_closed_pipe_is_no_traceback(tmp_path: Path, argv: list[str]) -> None:
    if argv == ["running"]:  # something to print
        dssr(tmp_path, "submit", "--name", "lister", "--", "sleep 30")
        time.sleep(0.5)
    read, write = os.pipe()
    os.close(read)  # `| head -0`: the reader is gone before the first line
    try:
        result = run(tmp_path, *argv, stdout=write)
    finally:
        os.close(write)
        if argv == ["running"]:
            dssr(tmp_path, "terminate", "--name", "lister", "--force", "1")
    assert result.returncode == 141 and result.stderr == ""


def test_a_closed_pipe_in_a_shell_pipeline(tmp_path: Path) -> None:
    dssr(tmp_path, "submit", "--name", "piped", "--", "sleep 30")
    time.sleep(0.5)
    script = f"set -o pipefail; {sys.executable} -m dssr_core.cli running | head -0"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env(tmp_path), timeout=60)
    dssr(tmp_path, "terminate", "--name", "piped", "--force", "1")
    assert result.returncode == 141 and result.stderr == ""


def test_interrupted_exits_130_with_a_line(tmp_path: Path) -> None:
    dssr(tmp_path, "submit", "--name", "forever", "--", "sleep 60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dssr_core.cli", "wait", "--name", "forever", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    time.sleep(1.5)
    proc.send_signal(2)
    out, err = proc.communicate(timeout=30)
    dssr(tmp_path, "terminate", "--name", "forever", "--force", "1")
    assert proc.returncode == 130 and out == "" and err == "dssr: interrupted\n"


def test_a_walltime_and_a_partition_in_the_schedulers_forms_are_taken(tmp_path: Path) -> None:
    for walltime in ("01:00:00", "1-00:00:00", "UNLIMITED", "30"):
        code, out = dssr(
            tmp_path,
            "submit",
            "--name",
            f"w{len(walltime)}",
            "--walltime",
            walltime,
            "--partition",
            "batch",
            "--",
            "true",
        )
        assert code == 0 and out.strip().isdigit()


def test_tail_of_a_collected_job_says_its_output_was_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "gone", "--", "echo once")[1].strip()
    assert dssr(tmp_path, "wait", "--name", "gone", "--timeout", "20", "--collect", jobid)[0] == 0
    capsys.readouterr()
    assert dssr(tmp_path, "tail", "--name", "gone", jobid) == (1, "")
    assert capsys.readouterr().err == f"dssr: Job {jobid} has no output any more: it was collected.\n"


def test_an_unknown_plugin_from_the_environment_is_named_by_its_variable(tmp_path: Path) -> None:
    by_variable = subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", "running"],
        capture_output=True,
        text=True,
        env={**env(tmp_path), "JARVICE_BAREMETAL_CONNECTOR": "pbs"},
        timeout=60,
    )
    assert by_variable.returncode == 2
    assert by_variable.stderr.startswith('dssr: JARVICE_BAREMETAL_CONNECTOR: No such connector "pbs".')


# -- issue 21's kinds tried again: output that cannot be written, flags typed without a value --------------
@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["plugins"], ["tail", "--name", "long", "1"]])
def test_output_that_cannot_be_written_is_exit_1_with_one_line(tmp_path: Path, argv: list[str]) -> None:
    """`dssr ... > /dev/full`: it said nothing and exited 0 (argparse), or ended in a traceback."""
    if argv[0] == "tail":  # more output than a buffer holds: the write fails before the end
        code, _ = dssr(tmp_path, "submit", "--name", "long", "--", "seq 1 200000")
        assert code == 0
        assert dssr(tmp_path, "wait", "--name", "long", "1")[0] == 0
    with open("/dev/full", "w") as full:
        result = run(tmp_path, *argv, stdout=full)
    assert result.returncode == 1
    assert result.stderr == "dssr: cannot write its output (No space left on device).\n"


@pytest.mark.parametrize("flag", ["--connector", "--executor", "--url"])
@pytest.mark.parametrize("value", ["", "  "])
def test_a_flag_typed_without_a_value_is_bad_usage_naming_it(tmp_path: Path, flag: str, value: str) -> None:
    """`dssr --connector "" running` ran the default connector, silently."""
    result = run(tmp_path, flag, value, "running")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"dssr: {flag} is empty: give a value, or leave the flag out.\n"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["tail", "--name", "x", "--lines", "-5", "1"], "argument -n/--lines: '-5' is not an integer >= 1"),
        (["tail", "--name", "x", "--lines", "abc", "1"], "argument -n/--lines: 'abc' is not an integer >= 1"),
        (["wait", "--name", "x", "--timeout", "-1", "1"], "argument --timeout: '-1' is not a number of seconds >= 0"),
    ],
)
def test_numbers_that_are_not_what_they_claim_are_bad_usage(tmp_path: Path, argv: list[str], words: str) -> None:
    result = run(tmp_path, *argv)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_a_state_folder_that_is_a_file_is_a_bad_setting_naming_it(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    result = run(tmp_path, "running")
    assert result.returncode == 2
    assert result.stderr == f"dssr: JARVICE_LOCAL_STATE_DIR='{tmp_path}/state' cannot be created: File exists.\n"
