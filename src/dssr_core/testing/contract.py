"""The behavioural contract every connector passes, as a pytest class to subclass.

Usage (in a test module of your connector)::

    class TestMyConnector(ConnectorContract):
        timeout = 60.0

        @pytest.fixture
        def downstream(self, tmp_path):
            ds = Downstream(MyConnector(Settings(...)), ShellExecutor(Settings()))
            yield ds
            ds.close()

The executor must run plain shell commands (``JobSpec.command``), e.g. the
``shell`` executor.  Override :meth:`make_spec` when your connector needs more
than a name and a command (a partition, an identity...).  Every wait polls
until a deadline (:attr:`timeout`), so a slow scheduler only makes it slower.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Iterator, Literal, TypeVar

import pytest

from dssr_core import BadRequest, Check, ClusterError, Downstream, ExitStatus, JobRef, JobSpec, JobState, NotFound

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | Literal[False] | None], timeout: float = 60, every: float = 0.3) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def unique_name(prefix: str = "contract") -> str:
    """A job name no other test (or earlier run on a shared cluster) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class ConnectorContract:
    """Subclass as ``Test...`` and provide the ``downstream`` fixture."""

    #: how long a job may take to start, or to finish once it runs (seconds)
    timeout: float = 30.0
    #: pause between two looks at the scheduler (seconds)
    poll_interval: float = 0.1
    #: how long a held job is watched to check that it does not start (seconds)
    hold_observation: float = 1.0
    #: the state ``exit_status`` gives for a job id the scheduler never had
    unknown_state: JobState = JobState.UNKNOWN
    #: a job id the connector never gave out
    unknown_jobid: str = "999999999"

    # -- what a subclass provides --------------------------------------------
    @pytest.fixture
    def downstream(self) -> Iterator[Downstream]:
        raise NotImplementedError(
            "Provide a `downstream` fixture: a Downstream on your connector with a shell-capable executor."
        )
        yield  # pragma: no cover

    def make_spec(self, name: str, command: str, **kw: Any) -> JobSpec:
        """A job the connector can run natively that runs ``command`` with bash."""
        return JobSpec(name=name, command=command, **kw)

    # -- helpers --------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _terminate_leftovers(self, downstream: Downstream) -> Iterator[None]:
        self._submitted: list[JobRef] = []
        yield
        for ref in self._submitted:
            try:
                downstream.terminate(ref, force=True)
                downstream.connector.cleanup(ref)
            except Exception:  # noqa: BLE001 - best effort after the test
                pass

    def submit(self, ds: Downstream, command: str, **kw: Any) -> JobRef:
        name = unique_name()
        submission = ds.submit(self.make_spec(name, command, **kw))
        ref = JobRef(name, 0, submission.jobid)
        self._submitted.append(ref)
        return ref

    def wait_for(self, what: str, probe: Callable[[], T | Literal[False] | None], timeout: float | None = None) -> T:
        return wait_for(what, probe, self.timeout if timeout is None else timeout, self.poll_interval)

    def wait_state(self, ds: Downstream, ref: JobRef, state: JobState) -> None:
        def probe() -> bool:
            status = ds.runstatus(ref)
            return status is not None and status.state is state

        self.wait_for(f"job {ref.jobid} to be {state.value}", probe)

    def wait_end(self, ds: Downstream, ref: JobRef, collect: bool = False) -> ExitStatus:
        def probe() -> ExitStatus | None:
            try:
                return ds.exitstatus(ref, collect=collect)
            except ClusterError as exc:
                if not exc.transient:
                    raise
                return None

        return self.wait_for(f"job {ref.jobid} to end", probe)

    @staticmethod
    def listed(ds: Downstream, ref: JobRef) -> str | None:
        """'running', 'queued' or None, from the lists of running and queued jobs."""
        for state, jobs in (("running", ds.running()), ("queued", ds.queued())):
            if (ref.name, ref.jobid) in [(job.ref.name, job.ref.jobid) for job in jobs]:
                return state
        return None

    # -- the contract ----------------------------------------------------------
    def test_submit_returns_a_jobid_listed_as_queued_or_running(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "sleep 60")
        assert ref.jobid
        assert self.listed(downstream, ref) in ("queued", "running")
        self.wait_for("the job to be listed as running", lambda: self.listed(downstream, ref) == "running")
        status = downstream.runstatus(ref)
        assert status is not None and status.state is JobState.RUNNING and status.nodes

    def test_completed_job_has_rc_0_and_its_output(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo contract-hello")
        end = self.wait_end(downstream, ref)
        assert (end.state, end.rc) == (JobState.COMPLETED, 0)
        assert "contract-hello" in end.output
        assert self.listed(downstream, ref) is None

    def test_node_variables_are_set(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, 'echo "rank=$PROCESS_PROCID job=$JOB_JOBID nodes=$JOB_NNODES"')
        end = self.wait_end(downstream, ref)
        assert f"rank=0 job={ref.jobid} nodes=1" in end.output

    def test_failing_command_is_failed_with_rc_1(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo contract-oops; exit 3")
        end = self.wait_end(downstream, ref)
        assert (end.state, end.rc) == (JobState.FAILED, 1)
        assert "contract-oops" in end.output

    def test_terminated_job_is_cancelled_with_rc_minus_15(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "sleep 300")
        self.wait_state(downstream, ref, JobState.RUNNING)
        downstream.terminate(ref)
        end = self.wait_end(downstream, ref)
        assert (end.state, end.rc) == (JobState.CANCELLED, -15)
        self.wait_for("the job to leave the lists", lambda: self.listed(downstream, ref) is None)

    def test_terminating_a_finished_job_is_not_an_error(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "true")
        self.wait_end(downstream, ref)
        downstream.terminate(ref)
        assert self.wait_end(downstream, ref).state is JobState.COMPLETED

    def test_held_job_stays_queued_until_released(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo contract-released", held=True)
        deadline = time.monotonic() + self.hold_observation
        while time.monotonic() < deadline:
            assert self.listed(downstream, ref) == "queued"
            time.sleep(self.poll_interval)
        downstream.release(ref)
        end = self.wait_end(downstream, ref)
        assert end.state is JobState.COMPLETED
        assert "contract-released" in end.output

    def test_submit_is_idempotent_by_name(self, downstream: Downstream) -> None:
        spec = self.make_spec(unique_name(), "echo once", held=True)
        first = downstream.submit(spec)
        self._submitted.append(JobRef(spec.name, 0, first.jobid))
        second = downstream.submit(spec)
        assert second.jobid == first.jobid
        assert [job.ref.name for job in downstream.queued()].count(spec.name) == 1

    def test_a_second_submission_says_the_job_already_existed(self, downstream: Downstream) -> None:
        spec = self.make_spec(unique_name(), "echo once", held=True)
        first = downstream.submit(spec)
        self._submitted.append(JobRef(spec.name, 0, first.jobid))
        assert not first.existed
        assert downstream.submit(spec).existed

    def test_tail_is_not_found_before_output(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo later", held=True)
        with pytest.raises(NotFound):
            downstream.tail(ref, 10)

    def test_tail_returns_the_last_lines(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "seq 1 50")
        self.wait_end(downstream, ref)
        assert downstream.tail(ref, 5).splitlines() == ["46", "47", "48", "49", "50"]

    def test_exit_status_answers_again_after_cleanup(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo collected")
        first = self.wait_end(downstream, ref, collect=True)
        second = downstream.exitstatus(ref)
        assert (second.state, second.rc) == (first.state, first.rc) == (JobState.COMPLETED, 0)
        assert second.output == ""

    def test_exit_status_of_a_running_job_asks_to_retry(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "sleep 60")
        self.wait_state(downstream, ref, JobState.RUNNING)
        with pytest.raises(ClusterError) as caught:
            downstream.exitstatus(ref, collect=False)
        assert caught.value.transient

    def test_unknown_job_exit_status(self, downstream: Downstream) -> None:
        end = downstream.exitstatus(JobRef(unique_name(), 0, self.unknown_jobid))
        assert end.state is self.unknown_state
        assert end.rc == self.unknown_state.rc

    def test_unknown_job_has_no_status(self, downstream: Downstream) -> None:
        assert downstream.runstatus(JobRef(unique_name(), 0, self.unknown_jobid)) is None

    def test_releasing_an_unknown_job_is_not_found(self, downstream: Downstream) -> None:
        # not a ClusterError: the upstream reads a 500 as "ask again", forever
        with pytest.raises(NotFound):
            downstream.release(JobRef(unique_name(), 0, self.unknown_jobid))

    def test_another_jobs_id_neither_reads_stops_nor_releases_it(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo contract-private", held=True)
        other = JobRef(unique_name(), 0, ref.jobid)
        for call in (
            downstream.terminate,
            downstream.release,
            downstream.events,
            lambda r: downstream.exitstatus(r, collect=True),
        ):
            with pytest.raises(BadRequest):
                call(other)
        assert downstream.runstatus(other) is None
        assert self.listed(downstream, ref) == "queued"
        downstream.release(ref)
        assert "contract-private" in self.wait_end(downstream, ref).output

    def test_events_describe_the_job(self, downstream: Downstream) -> None:
        ref = self.submit(downstream, "echo events", held=True)
        text = downstream.events(ref)
        assert isinstance(text, str) and ref.jobid in text

    @pytest.mark.parametrize("path", ["..", "../..", "/../etc", "a/../../b", "/.."])
    def test_list_files_refuses_paths_escaping_the_storage(self, downstream: Downstream, path: str) -> None:
        with pytest.raises(BadRequest):
            downstream.list_files(path)

    def test_ping_answers(self, downstream: Downstream) -> None:
        downstream.connector.ping()
        assert downstream.healthy()

    def test_after_a_poll_the_last_contact_is_recent_and_good_or_untracked(self, downstream: Downstream) -> None:
        downstream.running()
        contact = downstream.connector.last_contact()
        assert contact is None or (contact.ok and contact.age() < 60), contact
        ready, reason = downstream.readiness(60)
        assert ready, reason

    def test_diagnose_passes_on_a_working_cluster(self, downstream: Downstream) -> None:
        checks = list(downstream.connector.diagnose(downstream.executor))
        assert checks and all(isinstance(check, Check) for check in checks)
        assert [check.line() for check in checks if not check.ok] == []
