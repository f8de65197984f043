"""The README's first steps: `dssr-server` running on the local connector, and `dssr` beside it on the same
state folder (the server starts and reaps the jobs; the command line reads, submits, releases and stops them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import legacy_template, submit_args
from tests.server.live import Server, wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    live = Server(tmp_path / "state", env={"JARVICE_LOCAL_KILL_GRACE": "2"}).start()
    yield live
    live.stop()


def dssr(server: Server, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVICE_")}
    env.update(JARVICE_LOCAL_STATE_DIR=str(server.state_dir), JARVICE_LOCAL_KILL_GRACE="2")
    return subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", *argv], capture_output=True, text=True, env=env, timeout=timeout
    )


def zombies(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[1].startswith("Z")]


def test_dssr_submits_and_follows_jobs_beside_the_running_server(server: Server) -> None:
    listed = dssr(server, "running")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    submitted = dssr(server, "submit", "--name", "beside", "--", "echo from the command line")
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.strip()
    waited = dssr(server, "wait", "--name", "beside", "--timeout", "30", jobid)
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith("from the command line\n") and "rc=0" in waited.stdout
    # the server sees the job the command line submitted, and answers for it
    answer = server.post("/exitstatus", {"name": "beside", "number": 0, "jobid": jobid})
    assert answer.status == 200 and answer.json()[0] == 0


def test_a_job_submitted_over_http_is_seen_stopped_and_its_name_kept_by_dssr(server: Server) -> None:
    answer = server.post("/submit", submit_args("web-1", 1, legacy_template("sleep 60"), key="shell"))
    assert answer.status == 200, answer.body
    jobid = answer.json()[0]
    wait_for(lambda: dssr(server, "running").stdout == f"web-1\t{jobid}\n" or None)
    taken = dssr(server, "submit", "--name", "web-1", "--number", "1", "--", "true")
    assert taken.returncode == 1 and f"exists already: job {jobid}" in taken.stderr
    status = dssr(server, "status", "--name", "web-1", "--number", "1", jobid)
    assert status.returncode == 0 and status.stdout.startswith("running ")
    started = time.monotonic()
    stopped = dssr(server, "terminate", "--name", "web-1", "--number", "1", jobid)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - started < 10
    ended = dssr(server, "exitstatus", "--name", "web-1", "--number", "1", jobid)
    assert ended.returncode == 0 and "rc=-15" in ended.stdout
    assert server.get("/running").json() == []
    # the server reaps the supervisor of the job the command line ended
    assert server.process is not None
    pid = server.process.pid
    wait_for(lambda: zombies(pid) == [] or None, timeout=10)


def test_hold_and_release_beside_the_server(server: Server) -> None:
    jobid = dssr(server, "submit", "--name", "held", "--hold", "--", "echo released").stdout.strip()
    time.sleep(1)  # a few of the server's ticks: a held job stays queued
    assert dssr(server, "queued").stdout == f"held\t{jobid}\n"
    assert dssr(server, "release", "--name", "held", jobid).returncode == 0
    waited = dssr(server, "wait", "--name", "held", "--timeout", "30", jobid)
    assert waited.returncode == 0 and waited.stdout.startswith("released\n")


def test_doctor_beside_the_server_passes(server: Server) -> None:
    result = dssr(server, "--connector", "local", "--executor", "shell", "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "in use" not in result.stdout + result.stderr


def test_a_second_server_on_the_folder_is_still_refused(server: Server) -> None:
    second = Server(server.state_dir)
    with pytest.raises(RuntimeError, match="is in use by another local connector"):
        second.start(timeout=20)


def test_when_the_server_stops_dssr_runs_the_jobs_itself(server: Server) -> None:
    jobid = dssr(server, "submit", "--name", "queued-first", "--hold", "--", "echo after the server").stdout.strip()
    server.stop()
    assert dssr(server, "release", "--name", "queued-first", jobid).returncode == 0
    waited = dssr(server, "wait", "--name", "queued-first", "--timeout", "30", jobid)
    assert waited.returncode == 0 and waited.stdout.startswith("after the server\n"), waited.stderr


def test_a_start_is_never_recorded_over_an_end(tmp_path: Path) -> None:
    """The server starting a job a process beside it has just terminated: the end stays."""
    from dssr_core import JobState
    from dssr_local.store import JobStore

    store = JobStore(tmp_path / "jobs.db")
    try:
        jobid = store.insert("raced", 0, False, 1, "true")
        store.set_prepared(jobid, str(tmp_path / "job"), "script")
        assert store.mark_finished(jobid, JobState.CANCELLED, -15, time.time(), "terminated")
        store.mark_running(jobid, os.getpid(), None, time.time())
        record = store.get(jobid)
        assert record is not None and record.state is JobState.CANCELLED and record.pid is None
    finally:
        store.close()
