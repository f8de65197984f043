"""``dssr doctor`` on the local connector, and the line format every check is printed in."""

from __future__ import annotations

import io
from pathlib import Path

from dssr_core import Check, Settings
from dssr_core.cli import main


def doctor(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    rc = main(["doctor", *args], out=out, settings=Settings(env))
    return rc, out.getvalue().splitlines()


def test_a_check_is_one_line_ok_or_fail_what_and_why() -> None:
    assert Check("squeue answers", True).line() == "OK squeue answers"
    assert Check("sacct answers", False, "slurmdbd is down").line() == "FAIL sacct answers — slurmdbd is down"
    assert Check("the trial job starts", True, "on node1", 1.234).line() == "OK the trial job starts (1.23 s) — on node1"


def test_the_local_site_passes_and_a_trial_job_runs_with_each_stage_timed(tmp_path: Path) -> None:
    env = {"JARVICE_BAREMETAL_CONNECTOR": "local", "JARVICE_BAREMETAL_EXECUTOR": "shell",
           "JARVICE_LOCAL_STATE_DIR": str(tmp_path)}
    rc, lines = doctor(env, "--submit", "someone@example.com", "--timeout", "60")
    assert rc == 0, lines
    assert lines[0] == "OK settings parse — connector local, executor shell"
    assert "OK the local cluster answers" in lines
    stages = [x for x in lines if "trial job" in x]
    assert [x.split(" (")[0] for x in stages] == [
        "OK a trial job is submitted as someone@example.com", "OK the trial job starts",
        "OK the trial job runs to its end", "OK the trial job's exit status is read",
        "OK the trial job's files are removed", "OK the trial job, end to end",
    ]
    assert all(" s)" in x for x in stages)


def test_a_bad_setting_is_one_fail_line_and_exit_status_1(tmp_path: Path) -> None:
    rc, lines = doctor({"JARVICE_BAREMETAL_CONNECTOR": "pbs", "JARVICE_LOCAL_STATE_DIR": str(tmp_path)})
    assert rc == 1
    assert len(lines) == 1 and lines[0].startswith('FAIL settings parse — No such connector "pbs"')
