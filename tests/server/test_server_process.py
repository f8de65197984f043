"""dssr-server as a process: start-up report, bad settings, SIGTERM, restart, upstream authentication."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import legacy_template, submit_args
from tests.server.live import Server, free_port, wait_for


def run_server(*flags: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dssr_server", *flags],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "flags, env, words",
    [
        # issue 21: a bad flag is named by the flag typed, not by the variable it writes over
        (["--port", "http"], {}, "--port='http' is not an integer from 1 to 65535"),
        ([], {"WAITRESS_PORT": "http"}, "WAITRESS_PORT='http' is not an integer from 1 to 65535"),
        ([], {"WAITRESS_PORT": "99999"}, "WAITRESS_PORT='99999' is out of range"),
        ([], {"JARVICE_SCHED_LOGLEVEL": "verbose"}, "JARVICE_SCHED_LOGLEVEL='verbose' is not an integer"),
        (["--threads", "0"], {}, "--threads='0' is out of range"),
        ([], {"WAITRESS_THREADS": "0"}, "WAITRESS_THREADS='0' is out of range"),
        (["--connector", "pbs"], {}, 'No such connector "pbs". Available connectors:'),
        (["--connector", "local", "--executor", "docker"], {}, 'No such executor "docker". Available executors:'),
        (
            ["--connector", "local", "--executor", "shell"],
            {"JARVICE_LOCAL_MAX_JOBS": "lots"},
            "JARVICE_LOCAL_MAX_JOBS='lots' is not an integer",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, flags: list[str], env: dict[str, str], words: str
) -> None:
    result = run_server(*flags, env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path), **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dssr-server: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_flags_override_the_environment(tmp_path: Path) -> None:
    port = free_port()
    server = Server(tmp_path / "state", port=port, env={"JARVICE_BAREMETAL_CONNECTOR": "pbs", "WAITRESS_PORT": "1"})
    server.start()
    try:
        assert server.get("/live").status == 200
    finally:
        assert server.stop() == 0


@pytest.fixture
def secret_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "state", env={"JARVICE_DSSR_AUTH_TOKEN": "s3cret-upstream-token"})
    server.headers = {"Authorization": "Bearer s3cret-upstream-token"}
    server.start()
    yield server
    server.stop()


def test_the_start_up_report_names_connector_executor_and_address_and_no_secret(secret_server: Server) -> None:
    log = secret_server.log()
    report = [line for line in log.splitlines() if "listening on" in line]
    assert len(report) == 1
    assert f"http://127.0.0.1:{secret_server.port}" in report[0]
    assert "connector local" in report[0] and "executor shell" in report[0]
    assert "upstream token required" in report[0]
    assert "s3cret-upstream-token" not in log


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = Server(tmp_path / "state").start()
    assert server.stop(timeout=10) == 0
    assert "stopped" in server.log() and "Traceback" not in server.log()


def test_with_an_upstream_token_every_endpoint_but_live_requires_it(secret_server: Server) -> None:
    assert secret_server.get("/live", headers={"Authorization": ""}).status == 200
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic s3cret-upstream-token"},
    ):
        for answer in (
            secret_server.get("/running", headers=headers),
            secret_server.post("/online", {}, headers=headers),
            secret_server.get("/gc", headers=headers),
        ):
            assert answer.status == 401 and "bearer token" in answer.json()["error"]
    assert secret_server.get("/running").status == 200
    assert secret_server.post("/online", {}).json() is True


def test_a_job_survives_a_server_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = Server(state).start()
    args = submit_args("jarvice-kirby-77", 77, legacy_template("sleep 3; echo done"), key="shell")
    jobid, _ = server.post("/submit", args).json()
    job = {"name": "jarvice-kirby-77", "number": 77, "jobid": jobid}
    wait_for(lambda: [job["name"], jobid] in server.get("/running").json() or None)
    assert server.stop() == 0

    again = Server(state, port=server.port).start()
    try:

        def ended() -> list[Any] | None:
            answer = again.post("/exitstatus", job)
            return answer.json() if answer.status == 200 else None

        rc, elapsed, (stdout, termination) = wait_for(ended, timeout=30, interval=0.3)
        assert rc == 0 and "done" in stdout and "COMPLETED" in termination
    finally:
        again.stop()


def test_a_second_server_on_the_same_local_state_dir_is_refused_and_a_killed_one_frees_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Server(state).start()
    try:
        second = run_server(
            "--connector",
            "local",
            "--executor",
            "shell",
            "--port",
            str(free_port()),
            env={"JARVICE_LOCAL_STATE_DIR": str(state)},
        )
        assert second.returncode == 2, second.stderr
        assert first.process is not None
        assert (
            f"JARVICE_LOCAL_STATE_DIR='{state}' is in use by another local connector (pid {first.process.pid})"
            in second.stderr
            and "Traceback" not in second.stderr
        )
        assert first.get("/live").status == 200
    finally:
        assert first.process is not None
        first.process.kill()  # a crash: the lock goes with the process
        first.process.wait()
    Server(state, port=first.port).start().stop()


def test_gc_answers_bad_with_500_when_the_cluster_does_not_answer(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = Server(state).start()
    try:
        assert server.get("/gc").json() == {"status": "OK"}
        (state / "jobs").rename(tmp_path / "jobs-away")  # the local connector's "cluster" is gone
        answer = server.get("/gc")
        assert (answer.status, answer.json()) == (500, {"status": "BAD"})
        (tmp_path / "jobs-away").rename(state / "jobs")
        assert server.get("/gc").json() == {"status": "OK"}
    finally:
        server.stop()
