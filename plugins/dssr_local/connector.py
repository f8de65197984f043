"""The local connector: each job a process group on this machine, its state in SQLite."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

from dssr_core import (
    BadRequest,
    ClusterError,
    Connector,
    Executor,
    ExitStatus,
    FileEntry,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    NotFound,
    Settings,
    Submission,
    shown,
)
from dssr_core.batch import format_seconds, numeric_id

from . import procs
from .extras import LocalExtras
from .files import list_folder
from .host import claim_state_dir, current_user, events_text, job_status, last_sign_of_life, mtime
from .jobfiles import (
    CANCEL_FILE,
    EXIT_FILE,
    OUTPUT_FILE,
    SECRETS_FILE,
    SUPERVISOR_LOG,
    LaunchPlan,
    read_claim,
    read_exit_code,
    write_atomic,
)
from .output import last_lines
from .prepare import prepare_job
from .settings import LocalSettings
from .store import JobRecord, JobStore

log = logging.getLogger(__name__)

#: how often the scheduler thread looks at running jobs when nothing wakes it
TICK_SECONDS = 0.25
MAX_OUTPUT_LINES = 10_000


class LocalConnector(LocalExtras, Connector):
    name = "local"
    default_executor = "shell"
    runs_jobs_here = True
    requires_identity = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.local = LocalSettings.from_settings(settings)
        #: the state folder's lock; None beside the process (a server) holding it, which runs the jobs
        self._owner = claim_state_dir(self.local.state_dir, beside=self.local.beside_server)
        self.jobs_dir = self.local.state_dir / "jobs"
        try:
            self.store = JobStore(self.local.state_dir / "jobs.db")
        except BaseException:
            if self._owner is not None:
                os.close(self._owner)
            raise
        self.hostname = socket.gethostname()
        self.user = current_user()
        self._lock = self.store.lock
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        #: supervisors of terminated jobs, reaped once they are gone
        self._dying: list[subprocess.Popen[bytes]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._owner is not None:
            self._take_over()

    def _take_over(self) -> None:
        """Run the state folder's jobs from now on (this process holds its lock)."""
        with self._lock:
            for jobid in self.store.delete_unprepared():  # a crash of an older version
                log.warning("local job %s was recorded but never prepared: removed", jobid)
            self._refresh(reason_if_dead="the job's processes died while the server was down")
        self._thread = threading.Thread(target=self._loop, name="dssr-local-scheduler", daemon=True)
        self._thread.start()

    def _held(self) -> threading.RLock:
        """The lock to work under; beside a server that has gone away, this process takes its place first."""
        with self._lock:
            if self._owner is None and not self._stop.is_set():
                self._owner = claim_state_dir(self.local.state_dir, beside=True)
                if self._owner is not None:
                    log.info("the local state folder is free again: this process runs its jobs now")
                    self._take_over()
        return self._lock

    # -- submission ---------------------------------------------------------
    def submit(self, spec: JobSpec, executor: Executor) -> Submission:
        if spec.nodes > self.local.max_nodes:
            raise BadRequest(
                f"A job of {spec.nodes} nodes is more than this local connector runs "
                f"(JARVICE_LOCAL_MAX_NODES={self.local.max_nodes}): each node is a process on this host."
            )
        with self._held():
            # The record and its prepared folder appear together: a crash at any point leaves either
            # no job or one that runs; the name is looked up in the same transaction (one writer at a time)
            with self.store.transaction():
                known = self.store.find_uncollected(spec.name)
                if known is not None:
                    return Submission(known.jobid, known.script, existed=True)
                jobid = self.store.insert(spec.name, spec.number, spec.held, spec.nodes, spec.command, spec.digest())
                job_dir = self.jobs_dir / str(jobid)
                try:
                    script = prepare_job(self.local, self.hostname, self.user, jobid, job_dir, spec, executor)
                except BaseException:
                    shutil.rmtree(job_dir, ignore_errors=True)
                    raise
                self.store.set_prepared(jobid, str(job_dir), script)
            self._start_queued()
        log.info("local job %s (%s) queued%s", jobid, spec.name, " on hold" if spec.held else "")
        return Submission(str(jobid), script)

    # -- scheduling (callers hold the lock) ---------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self._lock:
                    self._refresh()
            except Exception:
                log.exception("local scheduler tick failed")

    def _refresh(self, reason_if_dead: str = "the job's supervisor ended without an exit code") -> None:
        if self._owner is None:
            return  # beside a server: it keeps the records up to date
        self._dying = [child for child in self._dying if child.poll() is None]
        for jobid, child in list(self._children.items()):  # a job ended by a process beside this one
            if child.poll() is not None and (record := self.store.get(jobid)) is not None and record.state.finished:
                del self._children[jobid]
        for record in self.store.active():
            self._update(record, reason_if_dead)
        self._start_queued()

    def _update(self, record: JobRecord, reason_if_dead: str) -> None:
        """Bring an active record in line with its job folder (a server killed mid-start included)."""
        if self._owner is None:
            return
        if record.state is JobState.QUEUED and record.job_dir:
            claimed = read_claim(Path(record.job_dir))
            if claimed is None:
                return
            # started by a server killed before it recorded the start
            self.store.mark_running(record.id, claimed[0], claimed[1], mtime(Path(record.job_dir)) or time.time())
            log.info("local job %s (%s) was started before a restart: adopted", record.id, record.name)
            found = self.store.get(record.id)
            assert found is not None
            record = found
        if record.state is JobState.RUNNING:
            self._reconcile(record, reason_if_dead)

    def _supervised(self, record: JobRecord) -> bool:
        """Whether a supervisor of the job may still be at work."""
        child = self._children.get(record.id)
        if child is not None and child.poll() is None:
            return True  # it runs the job, or is about to claim it
        claimed = read_claim(Path(record.job_dir))
        if claimed is not None:
            if child is not None and child.pid == claimed[0]:
                return False
            if claimed[0] != record.pid:  # another supervisor won the claim (a restart while one was starting)
                self.store.mark_running(record.id, claimed[0], claimed[1], record.started or time.time())
            return procs.alive(*claimed)
        return child is None and record.pid is not None and procs.alive(record.pid, record.pid_start)

    def _reconcile(self, record: JobRecord, reason_if_dead: str) -> None:
        """Record the end of a running job whose supervisor has finished."""
        job_dir = Path(record.job_dir)
        code = read_exit_code(job_dir)
        if code is None:
            if self._supervised(record):
                return
            code = read_exit_code(job_dir)  # it may have ended between the two looks
        self._children.pop(record.id, None)
        if code is None:
            self._finish(record, JobState.FAILED, None, last_sign_of_life(record), reason_if_dead)
            log.warning("local job %s (%s): %s", record.id, record.name, reason_if_dead)
            return
        ended = mtime(job_dir / EXIT_FILE) or time.time()
        state = JobState.COMPLETED if code == 0 else JobState.FAILED
        self._finish(record, state, code, ended, f"exit code {code}")

    def _finish(self, record: JobRecord, state: JobState, code: int | None, ended: float, reason: str) -> bool:
        done = self.store.mark_finished(record.id, state, code, ended, reason)
        if record.job_dir:
            try:
                os.unlink(Path(record.job_dir) / SECRETS_FILE)
            except OSError:
                pass
        return done

    def _start_queued(self) -> None:
        if self._owner is None:
            return  # the server beside this process starts them (within a tick)
        active = self.store.active()
        free = self.local.max_jobs - sum(1 for r in active if r.state is JobState.RUNNING)
        for record in active:
            if free <= 0:
                return
            if record.state is JobState.QUEUED and not record.held and record.job_dir:
                self._start(record)
                free -= 1

    def _start(self, record: JobRecord) -> None:
        job_dir = Path(record.job_dir)
        plan_env = LaunchPlan.load(job_dir).environment
        try:
            with open(job_dir / SUPERVISOR_LOG, "ab") as supervisor_log:
                child = subprocess.Popen(
                    [sys.executable, "-m", "dssr_local.runner", str(job_dir)],
                    cwd=job_dir,
                    env=dict(plan_env),
                    stdin=subprocess.DEVNULL,
                    stdout=supervisor_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            self._finish(record, JobState.FAILED, None, time.time(), f"the job could not start: {exc}")
            return
        self._children[record.id] = child
        self.store.mark_running(record.id, child.pid, procs.start_time(child.pid), time.time())
        log.info("local job %s (%s) started, supervisor pid %s", record.id, record.name, child.pid)

    def _record(self, ref: JobRef) -> JobRecord | None:
        """The job's record, brought up to date (None when unknown here).

        An id of another job (another name or number) is a ``BadRequest``:
        nobody reads, collects or stops a job by guessing its id.
        """
        number = numeric_id(ref.jobid)
        if number is None:
            return None
        record = self.store.get(number)
        if record is None or not record.job_dir:
            return None
        if (record.name, record.number) != (ref.name, ref.number):
            raise BadRequest(f"Job {ref.jobid} is not the job {shown(ref.name)} number {ref.number}.")
        if not record.state.finished:
            self._update(record, "the job's supervisor ended without an exit code")
            record = self.store.get(record.id)
        return record

    def status(self, ref: JobRef) -> JobStatus | None:
        try:
            with self._held():
                record = self._record(ref)
        except BadRequest:
            return None  # another job's id: this one is unknown
        if record is None or record.state.finished:
            return None
        return job_status(record, time.time(), self.hostname, self.user)

    # -- state --------------------------------------------------------------
    def snapshot(self) -> Sequence[JobStatus]:
        with self._held():
            self._refresh()
            records = self.store.active()
        now = time.time()
        return [job_status(r, now, self.hostname, self.user) for r in records]

    def exit_status(self, ref: JobRef) -> ExitStatus:
        with self._held():
            record = self._record(ref)
        if record is None:
            return ExitStatus(ref, JobState.UNKNOWN)
        if not record.state.finished:
            raise ClusterError(f"Job {ref.jobid} has not finished yet ({record.state.value}).", transient=True)
        output = ""
        if not record.collected:
            output = last_lines(Path(record.job_dir) / OUTPUT_FILE, MAX_OUTPUT_LINES) or ""
        elapsed = format_seconds(record.elapsed_seconds())
        end = ExitStatus(ref, record.state, elapsed, output, record.state.name, self.user, record.exit_code)
        return dataclasses.replace(end, submitted=record.submitted, started=record.started, ended=record.ended)

    def cleanup(self, ref: JobRef) -> None:
        with self._held():
            record = self._record(ref)
            if record is None or not record.state.finished:
                return
            job_dir = Path(record.job_dir)
            if record.job_dir and job_dir.parent == self.jobs_dir:
                shutil.rmtree(job_dir, ignore_errors=True)
            self.store.mark_collected(record.id)

    # -- control ------------------------------------------------------------
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        with self._held():
            record = self._record(ref)
            if record is None:
                return
            if record.state.finished:
                if force and record.state is JobState.CANCELLED and record.pid is not None:
                    # an abort after a shutdown: no more grace for what is left of the job
                    procs.signal_group(record.pid, signal.SIGKILL)
                return
            reason = "terminated" + (" at once" if force else "")
            # a supervisor claiming the job from now on runs nothing; one that claimed it already is signalled
            write_atomic(Path(record.job_dir) / CANCEL_FILE, "")
            self._finish(record, JobState.CANCELLED, JobState.CANCELLED.rc, time.time(), reason)
            child = self._children.pop(record.id, None)
            if child is not None:
                self._dying.append(child)
            claimed = read_claim(Path(record.job_dir))
            if claimed is not None and record.state is JobState.QUEUED:
                record = dataclasses.replace(record, state=JobState.RUNNING, pid=claimed[0], pid_start=claimed[1])
            pid = record.pid
            if record.state is JobState.RUNNING and pid is not None and procs.alive(pid, record.pid_start):
                procs.signal_group(pid, signal.SIGKILL if force else signal.SIGTERM)
            self._start_queued()
        if record.state is JobState.RUNNING and pid is not None and not force:
            if self._owner is None:  # this process may exit at once: the grace is waited for here
                procs.kill_after(pid, record.pid_start, self.local.kill_grace)
            else:
                timer = threading.Timer(self.local.kill_grace, procs.signal_group, (pid, signal.SIGKILL))
                timer.daemon = True
                timer.start()
        log.info("local job %s (%s) %s", record.id, record.name, reason)

    def release(self, ref: JobRef) -> None:
        with self._held():
            record = self._record(ref)
            if record is None:
                raise NotFound(f"There is no job {ref.jobid} to release.")
            if record.state is JobState.QUEUED and record.held:
                self.store.release(record.id)
                self._start_queued()

    def events(self, ref: JobRef) -> str:
        with self._held():
            record = self._record(ref)
        if record is None:
            return f"Job {ref.jobid} is unknown to this downstream."
        return events_text(record, self.hostname, self.user)

    # -- files --------------------------------------------------------------
    def tail(self, ref: JobRef, lines: int) -> str:
        with self._held():
            record = self._record(ref)
        gone = record is not None and record.collected
        text = last_lines(Path(record.job_dir) / OUTPUT_FILE, lines) if record and record.job_dir and not gone else None
        if not text:
            raise NotFound(f"Job {ref.jobid} has no output {'any more: it was collected' if gone else 'yet'}.")
        return text

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return list_folder(self.local.data_dir, path, details)

    # -- health -------------------------------------------------------------
    def ping(self) -> None:
        self.store.ping()
        if not os.access(self.jobs_dir, os.W_OK | os.X_OK):
            raise ClusterError(f"The local state folder {str(self.jobs_dir)!r} is not writable.")

    def describe(self) -> Mapping[str, str]:
        return self.local.describe()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self.store.close()
        if self._owner is not None:
            os.close(self._owner)  # releases the state folder for the next server
