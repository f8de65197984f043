"""The local connector: one process group per job, SQLite state across restarts, queueing, files."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path
from typing import Mapping

import pytest

from dssr_core import (
    BadRequest,
    ConfigError,
    Executor,
    JobRef,
    JobSpec,
    JobState,
    Launch,
    LaunchContext,
    NotFound,
    Settings,
    load_connector,
    load_executor,
)
from dssr_local import procs
from dssr_local.connector import LocalConnector
from dssr_local.shell import ShellExecutor

from .conftest import MakeConnector
from .jobs import state_of, wait_end, wait_running, wait_until


def submit(
    connector: LocalConnector, name: str, command: str, executor: Executor | None = None, **kw: object
) -> JobRef:
    submission = connector.submit(JobSpec(name=name, command=command, **kw), executor or ShellExecutor(Settings({})))  # type: ignore[arg-type]  # each test passes each field the type JobSpec wants
    return JobRef(name, 0, submission.jobid)


def gone(pid: int) -> bool:
    return procs.start_time(pid) is None


# -- processes ------------------------------------------------------------------
def test_job_runs_in_its_own_process_group_from_its_folder(connector: LocalConnector, state_dir: Path) -> None:
    ref = submit(connector, "pg", 'echo "pgid=$(ps -o pgid= -p $$ | tr -d " ")"; pwd')
    end = wait_end(connector, ref)
    pgid_line, folder = end.output.splitlines()
    assert int(pgid_line.split("=")[1]) != os.getpgid(0)
    assert folder == str(state_dir / "jobs" / ref.jobid)


def test_terminate_kills_the_whole_process_group_including_grandchildren(
    connector: LocalConnector, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    ref = submit(connector, "tree", f"(trap '' TERM; exec sleep 300) & echo $! > {pidfile}; sleep 300")
    wait_until("the grandchild to start", lambda: pidfile.exists() and pidfile.read_text().strip())
    grandchild = int(pidfile.read_text())
    connector.terminate(ref)
    assert wait_end(connector, ref).state is JobState.CANCELLED
    # it ignores SIGTERM: the SIGKILL after the 0.5 s grace period ends it
    wait_until("the grandchild to be killed", lambda: gone(grandchild), timeout=5.0)


def test_terminate_does_not_wait_for_the_grace_period(make_connector: MakeConnector, tmp_path: Path) -> None:
    connector = make_connector(JARVICE_LOCAL_KILL_GRACE="30")
    pidfile = tmp_path / "stubborn.pid"
    ref = submit(connector, "stubborn", f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done")
    wait_until("the job to start", lambda: pidfile.exists() and pidfile.read_text().strip())
    import time

    started = time.monotonic()
    connector.terminate(ref)
    assert time.monotonic() - started < 1.0
    assert connector.exit_status(ref).rc == -15
    assert not gone(int(pidfile.read_text()))  # still in its grace period


def test_force_after_terminate_kills_without_waiting_for_the_grace_period(
    make_connector: MakeConnector, tmp_path: Path
) -> None:
    connector = make_connector(JARVICE_LOCAL_KILL_GRACE="30")
    pidfile = tmp_path / "stubborn.pid"
    ref = submit(connector, "stubborn", f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done")
    wait_until("the job to start", lambda: pidfile.exists() and pidfile.read_text().strip())
    connector.terminate(ref)
    connector.terminate(ref, force=True)
    wait_until("the job to be killed", lambda: gone(int(pidfile.read_text())), timeout=3.0)
    assert connector.exit_status(ref).state is JobState.CANCELLED


def test_force_terminate_kills_at_once(make_connector: MakeConnector, tmp_path: Path) -> None:
    connector = make_connector(JARVICE_LOCAL_KILL_GRACE="30")
    pidfile = tmp_path / "stubborn.pid"
    ref = submit(connector, "stubborn", f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done")
    wait_until("the job to start", lambda: pidfile.exists() and pidfile.read_text().strip())
    connector.terminate(ref, force=True)
    wait_until("the job to be killed", lambda: gone(int(pidfile.read_text())), timeout=3.0)
    assert connector.exit_status(ref).state is JobState.CANCELLED


def test_terminating_a_queued_job_cancels_it_without_running_it(make_connector: MakeConnector) -> None:
    connector = make_connector(JARVICE_LOCAL_MAX_JOBS="1")
    blocker = submit(connector, "blocker", "sleep 300")
    waiting = submit(connector, "waiting", "echo should-not-run")
    assert state_of(connector, waiting) is JobState.QUEUED
    connector.terminate(waiting)
    end = connector.exit_status(waiting)
    assert (end.state, end.rc, end.output) == (JobState.CANCELLED, -15, "")
    connector.terminate(blocker, force=True)


def test_rank_0_exit_code_is_the_jobs_and_ends_the_other_ranks(connector: LocalConnector, tmp_path: Path) -> None:
    marker = tmp_path / "rank1.pid"
    command = f'if [ "$PROCESS_PROCID" = 0 ]; then sleep 0.3; exit 0; else echo $$ > {marker}; sleep 300; fi'
    ref = submit(connector, "ranks", command, nodes=2)
    end = wait_end(connector, ref)
    assert end.state is JobState.COMPLETED
    wait_until("rank 1 to be ended", lambda: gone(int(marker.read_text())), timeout=3.0)


def test_another_rank_failing_fails_the_job(connector: LocalConnector) -> None:
    command = 'if [ "$PROCESS_PROCID" = 0 ]; then sleep 300; else echo rank-one-fails; exit 7; fi'
    ref = submit(connector, "rankfail", command, nodes=2)
    end = wait_end(connector, ref)
    assert (end.state, end.rc) == (JobState.FAILED, 1)
    assert "rank 1 ended with code 7" in end.output


def test_every_rank_gets_the_node_variables(connector: LocalConnector, state_dir: Path) -> None:
    show = 'echo "$PROCESS_PROCID $JOB_NNODES $JOB_NTASKS $JOB_JOBID $JOB_SUBMIT_DIR $JOB_JOB_NODELIST"'
    # rank 0 ending ends the job: it waits for rank 1's line first
    wait_rank_1 = '[ "$PROCESS_PROCID" = 0 ] && until grep -q "^1 " output.log; do sleep 0.02; done'
    ref = submit(connector, "vars", f"{show}; {wait_rank_1}; true", nodes=2, cores=3)
    end = wait_end(connector, ref)
    host = connector.hostname
    job_dir = state_dir / "jobs" / ref.jobid
    assert sorted(end.output.splitlines()) == [f"{rank} 2 6 {ref.jobid} {job_dir} {host}" for rank in (0, 1)]


# -- environment and secrets ---------------------------------------------------------------
def test_server_environment_does_not_reach_jobs(connector: LocalConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVICE_SERVER_SECRET", "s3cr3t-value")
    ref = submit(connector, "env", "env")
    output = wait_end(connector, ref).output
    assert "s3cr3t-value" not in output
    assert "PATH=" in output


def test_spec_environment_is_exported_literally(connector: LocalConnector, tmp_path: Path) -> None:
    value = "$(touch pwned) 'quoted' `x`"
    ref = submit(connector, "envspec", 'printf "%s\\n" "$GREETING"; ls', environment={"GREETING": value})
    output = wait_end(connector, ref).output
    assert output.splitlines()[0] == value
    assert "pwned" not in output.splitlines()[1:]


class SecretExecutor(Executor):
    """An executor handing the connector a secret, as container executors do for registry passwords."""

    name = "secret"

    def launch(self, spec: JobSpec, ctx: LaunchContext) -> Launch:
        script = f'. "{ctx.secrets_file}"; [ "${{#REGISTRY_PASSWORD}}" = 7 ] && echo secret-ok; sleep 0.3'
        return Launch(script, secrets={"REGISTRY_PASSWORD": "hunter2"})


def test_secrets_go_to_a_private_file_removed_when_the_job_ends(connector: LocalConnector, state_dir: Path) -> None:
    submission = connector.submit(JobSpec(name="secret", command="unused"), SecretExecutor(Settings({})))
    ref = JobRef("secret", 0, submission.jobid)
    secrets = state_dir / "jobs" / ref.jobid / ".secrets.env"
    assert "hunter2" not in submission.script
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert "secret-ok" in wait_end(connector, ref).output
    assert not secrets.exists()
    assert "hunter2" not in connector.events(ref)


class MarkerExecutor(Executor):
    name = "marker"

    def launch(self, spec: JobSpec, ctx: LaunchContext) -> Launch:
        return Launch(spec.command, success_marker="ALL-GOOD")


@pytest.mark.parametrize(
    ("command", "state"),
    [("echo ALL-GOOD; exit 3", JobState.COMPLETED), ("echo not-good; exit 0", JobState.FAILED)],
)
def test_success_marker_in_rank_0_output_decides(connector: LocalConnector, command: str, state: JobState) -> None:
    ref = submit(connector, "marked", command, executor=MarkerExecutor(Settings({})))
    end = wait_end(connector, ref)
    assert end.state is state
    assert command.split(";")[0].split()[1] in end.output


# -- restart -------------------------------------------------------------------------
def test_restart_keeps_queued_running_and_finished_jobs(make_connector: MakeConnector, tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = make_connector(JARVICE_LOCAL_MAX_JOBS="1")
    done = submit(first, "done", "echo finished-before")
    wait_end(first, done)
    running = submit(first, "running", f"while [ ! -e {go} ]; do sleep 0.05; done; echo finished-after")
    queued = submit(first, "queued", "echo queued-ran")
    wait_running(first, running)
    first.close()

    second = make_connector(JARVICE_LOCAL_MAX_JOBS="1")
    assert state_of(second, running) is JobState.RUNNING
    assert state_of(second, queued) is JobState.QUEUED
    end = second.exit_status(done)
    assert (end.state, end.output) == (JobState.COMPLETED, "finished-before\n")
    go.touch()
    assert "finished-after" in wait_end(second, running).output
    assert "queued-ran" in wait_end(second, queued).output


def test_job_ending_while_server_is_down_is_recorded(make_connector: MakeConnector, tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = make_connector()
    ref = submit(first, "unseen", f"while [ ! -e {go} ]; do sleep 0.05; done; echo ended-unseen; exit 4")
    wait_running(first, ref)
    job_dir = Path(first.store.get(int(ref.jobid)).job_dir)  # type: ignore[union-attr]  # the job was just submitted: its record is there
    first.close()
    go.touch()
    wait_until("the supervisor to record the exit code", lambda: (job_dir / "exit_code").exists())
    second = make_connector()
    end = second.exit_status(ref)
    assert (end.state, end.rc) == (JobState.FAILED, 1)
    assert "ended-unseen" in end.output


def test_job_whose_processes_died_while_server_was_down_is_failed(make_connector: MakeConnector) -> None:
    first = make_connector()
    ref = submit(first, "doomed", "sleep 300")
    wait_running(first, ref)
    pid = first.store.get(int(ref.jobid)).pid  # type: ignore[union-attr]  # the job was just submitted: its record is there
    assert pid is not None
    first.close()
    os.killpg(pid, signal.SIGKILL)
    wait_until("the supervisor to die", lambda: not procs.alive(pid, None))
    second = make_connector()
    end = second.exit_status(ref)
    assert (end.state, end.rc) == (JobState.FAILED, 1)
    assert "died while the server was down" in second.events(ref)


# -- queueing ----------------------------------------------------------------------------
def test_jobs_beyond_the_limit_wait_and_start_in_submission_order(
    make_connector: MakeConnector, tmp_path: Path
) -> None:
    connector = make_connector(JARVICE_LOCAL_MAX_JOBS="2")
    order = tmp_path / "order"
    go = tmp_path / "go"
    refs = [
        submit(connector, f"job{i}", f"echo {i} >> {order}; while [ ! -e {go} ]; do sleep 0.05; done") for i in range(5)
    ]
    wait_until("two jobs to run", lambda: order.exists() and len(order.read_text().split()) == 2)
    assert [state_of(connector, r) for r in refs] == [JobState.RUNNING] * 2 + [JobState.QUEUED] * 3
    go.touch()
    for ref in refs:
        assert wait_end(connector, ref).state is JobState.COMPLETED
    records = [connector.store.get(int(r.jobid)) for r in refs]
    starts = [record.started for record in records if record is not None and record.started is not None]
    assert len(starts) == len(refs)
    assert starts[2:] == sorted(starts[2:]) and max(starts[:2]) <= min(starts[2:])


def test_held_job_waits_without_blocking_the_queue(make_connector: MakeConnector) -> None:
    connector = make_connector(JARVICE_LOCAL_MAX_JOBS="1")
    held = submit(connector, "held", "echo held-ran", held=True)
    after = submit(connector, "after", "echo after-ran")
    assert "after-ran" in wait_end(connector, after).output
    assert state_of(connector, held) is JobState.QUEUED
    connector.release(held)
    assert "held-ran" in wait_end(connector, held).output


def test_max_jobs_must_be_a_positive_integer(local_env: dict[str, str]) -> None:
    for bad in ("abc", "0"):
        with pytest.raises(ConfigError, match="JARVICE_LOCAL_MAX_JOBS"):
            LocalConnector(Settings(dict(local_env, JARVICE_LOCAL_MAX_JOBS=bad)))


def test_kill_grace_must_be_a_number(local_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="JARVICE_LOCAL_KILL_GRACE"):
        LocalConnector(Settings(dict(local_env, JARVICE_LOCAL_KILL_GRACE="soon")))


def test_unusable_state_dir_is_named(local_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="JARVICE_LOCAL_STATE_DIR"):
        LocalConnector(Settings(dict(local_env, JARVICE_LOCAL_STATE_DIR=str(blocker / "state"))))


def test_a_state_dir_serves_one_connector_at_a_time(make_connector: MakeConnector, local_env: dict[str, str]) -> None:
    first = make_connector()
    with pytest.raises(
        ConfigError, match=rf"JARVICE_LOCAL_STATE_DIR=.* is in use by another local connector \(pid {os.getpid()}\)"
    ):
        LocalConnector(Settings(local_env))
    first.ping()  # the refused one changed nothing
    first.close()
    second = make_connector()
    second.ping()


def test_state_dir_defaults_under_xdg_state_home(tmp_path: Path) -> None:
    connector = LocalConnector(Settings({"XDG_STATE_HOME": str(tmp_path / "xdg")}))
    try:
        assert connector.describe()["state_dir"] == str(tmp_path / "xdg" / "jarvice-dssr" / "local")
        assert connector.describe()["data_dir"] == str(tmp_path / "xdg" / "jarvice-dssr" / "local" / "data")
        assert (tmp_path / "xdg" / "jarvice-dssr" / "local" / "jobs.db").exists()
    finally:
        connector.close()


# -- ids, idempotency, collection ----------------------------------------------------------------
def test_job_ids_are_increasing_integers(connector: LocalConnector) -> None:
    ids = [int(submit(connector, f"id{i}", "true").jobid) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_same_name_after_collection_is_a_new_job(connector: LocalConnector) -> None:
    first = submit(connector, "again", "echo one")
    wait_end(connector, first)
    assert submit(connector, "again", "echo two").jobid == first.jobid
    connector.cleanup(first)
    second = submit(connector, "again", "echo two")
    assert second.jobid != first.jobid
    assert "two" in wait_end(connector, second).output


def test_cleanup_removes_the_job_folder_but_keeps_its_record(connector: LocalConnector, state_dir: Path) -> None:
    ref = submit(connector, "collect", "echo bye")
    wait_end(connector, ref)
    connector.cleanup(ref)
    assert not (state_dir / "jobs" / ref.jobid).exists()
    assert connector.exit_status(ref).state is JobState.COMPLETED
    with pytest.raises(NotFound):
        connector.tail(ref, 10)
    connector.cleanup(ref)  # twice: nothing left, not an error


def test_cleanup_leaves_a_running_job_alone(connector: LocalConnector, state_dir: Path) -> None:
    ref = submit(connector, "busy", "sleep 300")
    wait_running(connector, ref)
    connector.cleanup(ref)
    assert (state_dir / "jobs" / ref.jobid / "node.sh").exists()
    connector.terminate(ref, force=True)


def test_non_numeric_job_id_is_unknown(connector: LocalConnector) -> None:
    ref = JobRef("x", 0, "abc")
    assert connector.exit_status(ref).state is JobState.UNKNOWN
    with pytest.raises(NotFound):
        connector.tail(ref, 5)


# -- output -----------------------------------------------------------------------------------
def test_tail_reads_the_end_of_a_large_output(connector: LocalConnector) -> None:
    ref = submit(connector, "big", "seq 1 200000")
    end = wait_end(connector, ref)
    assert connector.tail(ref, 3) == "199998\n199999\n200000\n"
    assert len(end.output.splitlines()) == 10_000 and end.output.endswith("200000\n")


def test_tail_of_a_short_output_returns_all_of_it(connector: LocalConnector) -> None:
    ref = submit(connector, "short", "printf 'a\\nb'")
    wait_end(connector, ref)
    assert connector.tail(ref, 100) == "a\nb"


def test_events_tell_state_times_pid_command_and_folder(connector: LocalConnector) -> None:
    ref = submit(connector, "ev", "echo event-job")
    wait_end(connector, ref)
    text = connector.events(ref)
    for expected in ("State=COMPLETED", "ExitCode=0", "Command=echo event-job", f"jobs/{ref.jobid}", "SupervisorPid="):
        assert expected in text


# -- files ------------------------------------------------------------------------------
@pytest.fixture
def data_root(state_dir: Path, connector: LocalConnector) -> Path:
    root = state_dir / "data"
    (root / "inputs" / "deep").mkdir(parents=True)
    (root / "inputs" / "a.txt").write_text("12345")
    os.utime(root / "inputs" / "a.txt", (1_700_000_000, 1_700_000_000))
    return root


def test_list_files_lists_one_level_relative_to_the_data_root(connector: LocalConnector, data_root: Path) -> None:
    entries = connector.list_files("/inputs", details=True)
    assert [(e.path, e.is_dir) for e in entries] == [("/inputs/a.txt", False), ("/inputs/deep", True)]
    assert (entries[0].mtime, entries[0].size) == (1_700_000_000, 5)
    assert [e.path for e in connector.list_files("")] == ["/inputs"]


def test_list_files_refuses_dot_dot_escapes(connector: LocalConnector, data_root: Path) -> None:
    for path in ("..", "/inputs/../..", "inputs/deep/../../../jobs"):
        with pytest.raises(BadRequest):
            connector.list_files(path)


def test_list_files_refuses_symlinks_leading_out(connector: LocalConnector, data_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private").write_text("x")
    (data_root / "escape").symlink_to(outside)
    with pytest.raises(BadRequest):
        connector.list_files("/escape")
    shown = {e.path: e.is_dir for e in connector.list_files("/")}
    assert shown["/escape"] is False  # listed, never followed


def test_list_files_follows_symlinks_inside_the_root(connector: LocalConnector, data_root: Path) -> None:
    (data_root / "shortcut").symlink_to(data_root / "inputs")
    assert [e.path for e in connector.list_files("/shortcut")] == ["/inputs/a.txt", "/inputs/deep"]


def test_list_files_of_a_missing_folder_is_not_found(connector: LocalConnector, data_root: Path) -> None:
    with pytest.raises(NotFound):
        connector.list_files("/nope")


def test_list_files_uses_the_configured_data_dir(make_connector: MakeConnector, tmp_path: Path) -> None:
    data = tmp_path / "shared"
    (data / "results").mkdir(parents=True)
    connector = make_connector(JARVICE_LOCAL_DATA_DIR=str(data))
    assert [e.path for e in connector.list_files("/")] == ["/results"]


# -- discovery -----------------------------------------------------------------------------------
def test_local_and_shell_are_found_through_entry_points(local_env: Mapping[str, str]) -> None:
    connector = load_connector("local", Settings(dict(local_env)))
    try:
        assert isinstance(connector, LocalConnector)
        assert connector.requires_identity is False
        assert isinstance(load_executor("shell", Settings({})), ShellExecutor)
    finally:
        connector.close()


def test_a_job_database_of_an_earlier_version_gains_the_spec_digest_and_keeps_its_jobs(tmp_path: Path) -> None:
    import sqlite3

    from dssr_local.store import JobStore

    path = tmp_path / "jobs.db"
    old = sqlite3.connect(path)  # the table as it was before the spec digest
    old.executescript(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, number INTEGER NOT NULL,"
        " state TEXT NOT NULL, held INTEGER NOT NULL DEFAULT 0, nodes INTEGER NOT NULL DEFAULT 1,"
        " command TEXT NOT NULL DEFAULT '', job_dir TEXT NOT NULL, script TEXT NOT NULL DEFAULT '',"
        " submitted REAL NOT NULL, started REAL, ended REAL, pid INTEGER, pid_start TEXT, exit_code INTEGER,"
        " reason TEXT NOT NULL DEFAULT '', collected INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO jobs (name, number, state, job_dir, submitted) VALUES ('before', 1, 'queued', '/x', 100);"
    )
    old.commit()
    old.close()
    store = JobStore(path)
    kept = store.get(1)
    assert kept is not None and (kept.name, kept.spec_digest, kept.submitted) == ("before", "", 100.0)
    new = store.insert("after", 2, False, 1, "true", "dssr1-abc")
    added = store.get(new)
    assert added is not None and added.spec_digest == "dssr1-abc"
    store.close()
