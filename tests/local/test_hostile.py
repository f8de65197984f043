"""The local connector against hostile callers and crashes: no cross-job access, bounded nodes, no stuck job."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dssr_core import BadRequest, JobRef, JobSpec, JobState, NotFound, Settings
from dssr_local.connector import LocalConnector
from dssr_local.shell import ShellExecutor

from .conftest import MakeConnector
from .jobs import state_of, wait_end, wait_running


def submit(connector: LocalConnector, name: str, command: str, **kw: object) -> JobRef:
    submission = connector.submit(JobSpec(name=name, command=command, **kw), ShellExecutor(Settings({})))  # type: ignore[arg-type]  # each test passes each field the type JobSpec wants
    return JobRef(name, 0, submission.jobid)


# -- 5. another job's id ---------------------------------------------------------
@pytest.mark.parametrize("other", [JobRef("intruder", 0, "{jobid}"), JobRef("owner", 7, "{jobid}")])
def test_an_id_with_another_name_or_number_neither_reads_collects_nor_stops_the_job(
    connector: LocalConnector, other: JobRef
) -> None:
    ref = submit(connector, "owner", "echo private-output; sleep 2")
    wrong = JobRef(other.name, other.number, ref.jobid)
    wait_running(connector, ref)
    for call in (
        connector.exit_status,
        connector.terminate,
        lambda r: connector.tail(r, 10),
        connector.events,
        connector.release,
    ):
        with pytest.raises(BadRequest, match=f"Job {ref.jobid} is not the job"):
            call(wrong)
    assert connector.status(wrong) is None
    assert state_of(connector, ref) is JobState.RUNNING
    end = wait_end(connector, ref)
    assert end.state is JobState.COMPLETED and "private-output" in end.output
    with pytest.raises(BadRequest):
        connector.cleanup(wrong)
    assert "private-output" in connector.exit_status(ref).output  # still there for its owner


# -- 10. nodes ------------------------------------------------------------------
def test_a_job_of_more_nodes_than_allowed_is_refused_and_nothing_is_recorded(make_connector: MakeConnector) -> None:
    connector = make_connector(JARVICE_LOCAL_MAX_NODES="3")
    with pytest.raises(BadRequest, match="JARVICE_LOCAL_MAX_NODES=3"):
        submit(connector, "wide", "true", nodes=4)
    assert connector.store.all() == []
    assert wait_end(connector, submit(connector, "narrow", "true", nodes=3)).state is JobState.COMPLETED


def test_the_default_bound_on_nodes_is_16(connector: LocalConnector) -> None:
    with pytest.raises(BadRequest, match="JARVICE_LOCAL_MAX_NODES=16"):
        submit(connector, "wide", "true", nodes=17)


# -- 9. crash windows -----------------------------------------------------------
CRASH = textwrap.dedent("""
    import os, signal, sys
    from dssr_core import JobSpec, Settings
    from dssr_local.connector import LocalConnector
    from dssr_local.shell import ShellExecutor
    from dssr_local import store

    def crash(self, *args, **kw):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(store.JobStore, sys.argv[1], crash)
    connector = LocalConnector(Settings({"JARVICE_LOCAL_STATE_DIR": sys.argv[2], "PATH": os.environ["PATH"]}))
    connector.submit(JobSpec(name="crashy", command="echo ran >> " + sys.argv[3] + "; sleep 2"), ShellExecutor(Settings({})))
""")


@pytest.mark.parametrize("where", ["set_prepared", "mark_running"])
def test_a_server_killed_during_a_submission_leaves_no_job_or_one_that_runs_once(
    make_connector: MakeConnector, state_dir: Path, tmp_path: Path, where: str
) -> None:
    """``set_prepared``: killed after the record, before its folder was recorded (the job was stuck
    queued forever); ``mark_running``: killed after its supervisor started, before that was recorded."""
    marks = tmp_path / "marks"
    state_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-c", CRASH, where, str(state_dir), str(marks)], capture_output=True)
    assert result.returncode == -9, result.stderr
    connector = make_connector()
    records = connector.store.all()
    if where == "set_prepared":
        assert records == []  # never accepted: nothing left behind, and the name is free
        ref = submit(connector, "crashy", f"echo ran >> {marks}; sleep 2")
    else:
        assert [r.name for r in records] == ["crashy"]
        ref = JobRef("crashy", 0, records[0].jobid)
        assert submit(connector, "crashy", "ignored").jobid == ref.jobid  # a retry gets the same id
    assert wait_end(connector, ref).state is JobState.COMPLETED
    assert marks.read_text() == "ran\n"


def test_a_record_an_older_version_left_unprepared_is_removed_at_start(make_connector: MakeConnector) -> None:
    connector = make_connector()
    connector.store.insert("stuck", 1, False, 1, "true")  # what a crash of the old submit left behind
    connector.close()
    again = make_connector()
    assert again.store.all() == []
    with pytest.raises(NotFound):
        again.release(JobRef("stuck", 1, "1"))


def test_release_of_an_unknown_job_is_not_found(connector: LocalConnector) -> None:
    with pytest.raises(NotFound):
        connector.release(JobRef("nobody", 0, "4242"))


def test_a_job_id_of_2_to_the_63_is_unknown_not_an_error(connector: LocalConnector) -> None:
    ref = JobRef("big", 0, str(2**63))
    assert connector.exit_status(ref).state is JobState.UNKNOWN
    assert connector.status(ref) is None
