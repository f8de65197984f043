"""The dssr command line, on the local connector and the shell executor."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dssr_core import Settings
from dssr_core.cli import main


def dssr(tmp_path: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    settings = Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state"), "JARVICE_LOCAL_KILL_GRACE": "1"})
    code = main(["--connector", "local", "--executor", "shell", *argv], out=out, settings=settings)
    return code, out.getvalue()


def wait_exit(tmp_path: Path, name: str, jobid: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, out = dssr(tmp_path, "exitstatus", "--name", name, jobid)
        if code == 0:
            return out
        time.sleep(0.2)
    raise AssertionError("the job did not end")


def test_plugins_lists_connectors_and_executors() -> None:
    out = io.StringIO()
    assert main(["plugins"], out=out) == 0
    text = out.getvalue()
    assert "connectors:" in text and "local" in text and "slurm" in text
    assert "executors:" in text and "shell" in text and "singularity" in text


def test_submit_runs_a_native_job_and_exitstatus_shows_its_output(tmp_path: Path) -> None:
    code, out = dssr(
        tmp_path, "submit", "--name", "cli-job", "--nodes", "2", "--", "sh", "-c", "echo rank $PROCESS_PROCID; sleep 1"
    )
    assert code == 0
    jobid = out.strip()
    text = wait_exit(tmp_path, "cli-job", jobid)
    assert "rank 0" in text and "rank 1" in text and "rc=0" in text


def test_several_command_arguments_are_quoted_one_by_one(tmp_path: Path) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "cli-quoted", "--", "echo", "$HOME; echo injected")[1].strip()
    text = wait_exit(tmp_path, "cli-quoted", jobid)
    assert "$HOME; echo injected" in text and "\ninjected" not in text


def test_a_single_command_argument_is_a_shell_line(tmp_path: Path) -> None:
    code, out = dssr(tmp_path, "submit", "--name", "cli-line", "--", "echo one; echo two")
    jobid = out.strip()
    text = wait_exit(tmp_path, "cli-line", jobid)
    assert "one\ntwo" in text


def test_hold_then_release(tmp_path: Path) -> None:
    code, out = dssr(tmp_path, "submit", "--name", "cli-held", "--hold", "--", "echo", "freed")
    jobid = out.strip()
    assert dssr(tmp_path, "queued")[1].splitlines() == [f"cli-held\t{jobid}"]
    assert dssr(tmp_path, "release", "--name", "cli-held", jobid)[0] == 0
    assert "freed" in wait_exit(tmp_path, "cli-held", jobid)


def test_terminate_ends_a_job_with_rc_minus_15(tmp_path: Path) -> None:
    jobid = dssr(tmp_path, "submit", "--name", "cli-long", "--", "sleep 60")[1].strip()
    assert dssr(tmp_path, "terminate", "--name", "cli-long", jobid)[0] == 0
    assert "rc=-15" in wait_exit(tmp_path, "cli-long", jobid)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["submit", "--name", "bad name", "--", "true"], "Job name 'bad name' is not allowed"),
        (["submit", "--name", "ok", "--nodes", "two", "--", "true"], "'two' is not an integer >= 1"),
        (["submit", "--name", "ok", "--env", "1X=2", "--", "true"], "'1X=2' is not NAME=VALUE"),
        (["status", "--name", "ok", "1;reboot"], "'1;reboot' is not a valid job id"),
        (["tail", "--name", "ok", "-n", "0", "1"], "'0' is not an integer >= 1"),
    ],
)
def test_a_bad_value_exits_2_naming_it(argv: list[str], words: str) -> None:
    result = subprocess.run([sys.executable, "-m", "dssr_core.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_connector_exits_2_listing_the_installed_ones(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", "--connector", "pbs", "running"],
        capture_output=True,
        text=True,
        env={**os.environ, "JARVICE_LOCAL_STATE_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith('dssr: --connector: No such connector "pbs". Available connectors:')


def test_submit_without_a_command_exits_2(tmp_path: Path) -> None:
    code, _ = dssr(tmp_path, "submit", "--name", "nothing")
    assert code == 2


def test_exitstatus_of_an_unknown_job_exits_1_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", "exitstatus", "--name", "ghost", "4242"],
        capture_output=True,
        text=True,
        env={**os.environ, "JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state")},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "dssr: job 4242 (ghost) is unknown to this downstream"


def test_without_flags_dssr_uses_the_local_connector_and_the_shell_executor(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVICE_BAREMETAL_")}
    env["JARVICE_LOCAL_STATE_DIR"] = str(tmp_path / "state")
    run = [sys.executable, "-m", "dssr_core.cli"]
    jobid = subprocess.run(
        [*run, "submit", "--name", "plain", "--", "echo", "no-flags"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 20
    while (
        result := subprocess.run(
            [*run, "exitstatus", "--name", "plain", jobid], env=env, capture_output=True, text=True
        )
    ).returncode != 0:
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)
    assert "no-flags" in result.stdout and "rc=0" in result.stdout


@pytest.mark.parametrize("digits", ["²", "\u0662"])
def test_integer_options_take_ascii_digits_only(digits: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", "submit", "--name", "ok", "--nodes", digits, "--", "true"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "is not an integer >= 1" in result.stderr


def test_dssr_runs_where_the_servers_own_settings_are_bad(tmp_path: Path) -> None:
    """WAITRESS_* and the server's JARVICE_DSSR_* variables are dssr-server's: the command line ignores them."""
    env = {
        **os.environ,
        "JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state"),
        "WAITRESS_PORT": "http",
        "JARVICE_SCHED_LOGLEVEL": "verbose",
        "JARVICE_DSSR_LOG_FORMAT": "xml",
    }
    for argv in (["running"], ["doctor"]):
        result = subprocess.run(
            [sys.executable, "-m", "dssr_core.cli", "--connector", "local", "--executor", "shell", *argv],
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "WAITRESS_PORT" not in result.stdout + result.stderr
