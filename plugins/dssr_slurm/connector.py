"""The Slurm connector: the hooks of :class:`dssr_core.batch.BatchConnector`, through a backend.

The backend (:mod:`dssr_slurm.cli`: Slurm's commands over SSH, or
:mod:`dssr_slurm.rest`: slurmrestd) runs Slurm's operations; everything a batch
connector does the same way (the shared queue snapshot, batched accounting, job
files, garbage collection, output, listings) is the base's.  No job database: a
job's owner comes from Slurm.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator, Mapping, Sequence

from dssr_core import (
    BadRequest,
    Check,
    ClusterError,
    Executor,
    Identity,
    JobSpec,
    JobState,
    JobStatus,
    Settings,
    Stream,
    Submission,
    command,
)
from dssr_core.batch import CLUSTER_USER_PATTERN, PREFIX, BatchConnector, EndedJob, JobPlan, QueuedJob

from .backend import SlurmBackend
from .cli import CliBackend
from .extras import SlurmExtras
from .service import NodeAddresses, open_service, read_job_file
from .settings import SlurmSettings
from .states import exit_code, job_state

log = logging.getLogger(__name__)

#: ``sbatch_<flag>`` extras that would undo what the connector decides
RESERVED_FLAGS = frozenset(
    {
        "job-name",
        "output",
        "error",
        "input",
        "chdir",
        "uid",
        "gid",
        "wrap",
        "export",
        "export-file",
        "parsable",
        "get-user-env",
        "test-only",
        "array",
        "nodes",
        "ntasks",
        "hold",
        "open-mode",
    }
)


class SlurmConnector(SlurmExtras, BatchConnector):
    name = "slurm"
    scheduler = "Slurm"
    #: Slurm job ids are unsigned 32-bit integers
    max_jobid = 2**32 - 1
    default_executor = "singularity"
    supports_interactive = True
    cfg: SlurmSettings

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, SlurmSettings.from_settings(settings))
        self.backend: SlurmBackend = BACKENDS[self.cfg.interface](self, settings)
        self._timers: set[threading.Timer] = set()
        self._timers_lock = threading.Lock()
        self._nodes = NodeAddresses(self.shell)

    # -- the scheduler's hooks, through the backend ---------------------------------------
    def queue(self) -> Sequence[QueuedJob]:
        return self.backend.queue()

    def accounting(self, jobids: Sequence[str]) -> dict[str, EndedJob]:
        ended = {}
        for jobid, record in self.backend.accounting(jobids).items():
            state, code = job_state(record.state), exit_code(record.exit_code)
            # slurmrestd 22.05 (v0.0.38) records 0 for every job: a 0 is believed of a completed job only
            code = code if code or state is JobState.COMPLETED else None
            ended[jobid] = EndedJob(
                record.jobid,
                record.name,
                record.user,
                state,
                record.state,
                record.elapsed,
                code,
                record.complete,
                submitted=record.submitted,
                started=record.started,
                ended=record.ended,
            )
        return ended

    def job_state(self, state: str) -> JobState:
        return job_state(state)

    def user_for(self, identity: Identity | None) -> str:
        return self.backend.user_for(identity)

    def refuse(self, spec: JobSpec) -> None:
        for flag in spec.scheduler_flags:
            if flag in RESERVED_FLAGS:
                raise BadRequest(f"The scheduler flag --{flag} is set by this downstream and cannot be given.")

    def submit_job(self, plan: JobPlan) -> Submission:
        return self.backend.submit(plan)

    def cancel(self, job: QueuedJob, force: bool) -> None:
        self.backend.cancel(job.jobid)  # Slurm: TERM now, KILL after KillWait; the job ends CANCELLED
        if force:
            self.backend.cancel(job.jobid, "KILL")
        elif self.cfg.kill_grace > 0:
            self._later(self.cfg.kill_grace, job.jobid)

    def _later(self, delay: float, jobid: str) -> None:
        def kill() -> None:
            with self._timers_lock:
                self._timers.discard(timer)
            try:
                self.backend.cancel(jobid, "KILL")
            except Exception as exc:  # noqa: BLE001 - a background step: logged
                log.warning("job %s: KILL after the grace period failed: %s", jobid, exc)

        timer = threading.Timer(delay, kill)
        timer.daemon = True
        with self._timers_lock:
            self._timers.add(timer)
        timer.start()

    def hold_job(self, job: QueuedJob) -> None:
        result = self.shell.run(command("scontrol", "hold", job.jobid))
        if result.rc != 0:
            raise ClusterError(f"scontrol hold failed: {result.stderr.strip()[:300]}")

    def release_job(self, job: QueuedJob) -> None:
        self.backend.release(job.jobid)

    def show(self, job: QueuedJob) -> str:
        return self.backend.show(job.jobid)

    def ping(self) -> None:
        self.backend.ping()

    # -- interactive jobs -----------------------------------------------------------------
    def job_file(self, status: JobStatus, name: str, limit: int = 65536) -> str | None:
        owner = status.owner or ""
        if not CLUSTER_USER_PATTERN.match(owner):
            return None
        return read_job_file(self.shell, self.cfg.job_dir(owner, PREFIX + status.ref.name), name, limit)

    def open_service(self, node: str, port: int, timeout: float) -> Stream:
        return open_service(self.shell, self._nodes, node, port, timeout)

    # -- checks and report ------------------------------------------------------------------
    def more_local_checks(self) -> Iterator[Check]:
        """The backend's own (over SSH: the user-id mapping file; over slurmrestd: its token)."""
        return self.backend.local_checks()

    def user_login_checks(self) -> Iterator[Check]:
        return self.backend.user_login_checks()

    def scheduler_checks(self, executor: Executor | None) -> Iterator[Check]:
        from .doctor import scheduler_checks  # only `dssr doctor` and the start-up report need it

        return scheduler_checks(self, executor)

    def describe(self) -> Mapping[str, str]:
        return {**super().describe(), "slurm interface": self.cfg.interface, **self.backend.describe()}

    def close(self) -> None:
        with self._timers_lock:
            timers = list(self._timers)
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        self.backend.close()
        super().close()


def _cli(conn: SlurmConnector, settings: Settings) -> SlurmBackend:
    return CliBackend(conn.shell, conn.pool, conn.mapping, conn.cfg)


def _rest(conn: SlurmConnector, settings: Settings) -> SlurmBackend:
    from dssr_slurm.rest import RestBackend  # lazily: only sites using slurmrestd need it

    return RestBackend.from_settings(settings, conn.shell)


#: ``JARVICE_SLURM_INTERFACE`` -> the backend that owns that way of talking to Slurm
BACKENDS: Mapping[str, Callable[[SlurmConnector, Settings], SlurmBackend]] = {"cli": _cli, "http": _rest}
