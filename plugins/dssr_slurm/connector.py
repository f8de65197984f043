"""The Slurm connector: everything common to both ways of talking to Slurm.

State mapping, the shared ``squeue`` snapshot, batched ``sacct`` look-ups,
job files on the shared scratch (``<scratch>/users/<owner>/jarvice_<name>.out``
and the folder ``jarvice_<name>/``), garbage collection, termination and
folder listings.  The backend (:mod:`dssr_slurm.cli` or :mod:`dssr_slurm.rest`)
only runs Slurm's operations.  No job database: a job's owner comes from Slurm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping, Sequence

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
    LaunchContext,
    NotFound,
    Settings,
    Submission,
    command,
    numeric_id,
    shown,
)
from dssr_core import CLUSTER_USER_PATTERN, Batcher, Check, Contact, SharedSnapshot, Stream, UserMappingFile
from dssr_core import failed, passed

from .backend import PREFIX, AcctRecord, JobPlan, SlurmBackend, SlurmJob
from .cli import CliBackend
from .extras import SlurmExtras
from .index import QueueIndex
from .listing import FolderListing
from .remote import ServiceShell, build_pool
from .service import NodeAddresses, open_service, read_job_file
from .settings import SlurmSettings
from .states import exit_code, job_state

log = logging.getLogger(__name__)

#: lines of output returned by /exitstatus
EXIT_TAIL = 10_000
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


class SlurmConnector(SlurmExtras, Connector):
    name = "slurm"
    requires_identity = True
    supports_interactive = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.cfg = SlurmSettings.from_settings(settings)
        self.pool = build_pool(self.cfg)
        self.shell = ServiceShell(self.pool, self.cfg)
        self.mapping = UserMappingFile(self.cfg.mapping_file)
        self.backend: SlurmBackend = BACKENDS[self.cfg.interface](self, settings)
        self._snapshot: SharedSnapshot[QueueIndex] = SharedSnapshot(
            lambda: QueueIndex.of(self.backend.queue()), self.cfg.status_ttl
        )
        self._acct: Batcher[AcctRecord] = Batcher(self.backend.accounting)
        #: jobid -> owner of jobs whose end was just reported (so cleanup needs no second look-up)
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._owners_lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self._timers_lock = threading.Lock()
        self._listing = FolderListing(self.shell, self.cfg.pvcls_roots)
        self._started = time.time()
        self._nodes = NodeAddresses(self.shell)

    # -- submission ---------------------------------------------------------------
    def submit(self, spec: JobSpec, executor: Executor) -> Submission:
        slurm_name = PREFIX + spec.name
        for flag in spec.scheduler_flags:
            if flag in RESERVED_FLAGS:
                raise BadRequest(f"The scheduler flag --{flag} is set by this downstream and cannot be given.")
        user = self.backend.user_for(spec.identity)
        files = self.cfg.layout.files(user, slurm_name)
        ctx = LaunchContext(
            scratch_root=self.cfg.scratch,
            cluster_user=user,
            user_scratch=files.user_scratch,
            job_dir=files.job_dir,
            secrets_file=files.secrets_file,
        )
        launch = executor.launch(spec, ctx)
        jobid, existed, fscript = self.backend.submit(JobPlan(spec, slurm_name, user, files, launch))
        self._snapshot.invalidate()
        if existed:
            log.info("job %s already exists on the cluster as %s: not submitted again", slurm_name, jobid)
        return Submission(jobid=jobid, script=fscript, existed=existed)

    # -- state ----------------------------------------------------------------------
    def snapshot(self) -> Sequence[JobStatus]:
        return self._snapshot.get().statuses

    def status(self, ref: JobRef) -> JobStatus | None:
        status = self._snapshot.get().status_by_id.get(ref.jobid)
        if status is None or status.ref.name != ref.name:
            return None
        return replace(status, ref=ref)

    def _find(self, ref: JobRef, *, fresh: bool = False) -> SlurmJob | None:
        """The job in slurmctld (BadRequest when that id is another job)."""
        jobid = _slurm_id(ref)
        if fresh:
            self._snapshot.invalidate()
        job = self._snapshot.get().by_id.get(jobid)
        if job is not None and job.name != PREFIX + ref.name:
            raise BadRequest(f"Slurm job {jobid} is not the job {ref.name!r}.")
        return job

    def exit_status(self, ref: JobRef) -> ExitStatus:
        seen: SlurmJob | AcctRecord | None = self._find(ref)
        if seen is not None:
            code = self._accounted_exit_code(ref) if job_state(seen.state).finished else None
        elif (seen := self._accounted(ref)) is None:
            return ExitStatus(ref=ref, state=JobState.UNKNOWN, detail="UNKNOWN")
        else:
            code = exit_code(seen.exit_code)
        state, detail, elapsed, owner = job_state(seen.state), seen.state, seen.elapsed, seen.user
        times: dict[str, Any] = {"submitted": seen.submitted, "started": seen.started, "ended": seen.ended}
        if not state.finished:
            raise ClusterError(f"Job {ref.jobid} has not finished yet (Slurm says {detail}); ask again later.")
        # slurmrestd 22.05 (v0.0.38) records 0 for every job: a 0 is believed of a completed job only
        code = code if code or state is JobState.COMPLETED else None
        if not CLUSTER_USER_PATTERN.match(owner):
            return replace(ExitStatus(ref=ref, state=state, elapsed=elapsed, detail=detail, exit_code=code), **times)
        self._remember_owner(ref.jobid, owner)
        output = self._read_tail(self.cfg.output_file(owner, PREFIX + ref.name), EXIT_TAIL, missing_ok=True)
        return replace(ExitStatus(ref, state, elapsed, output, detail, owner=owner, exit_code=code), **times)

    def _remember_owner(self, jobid: str, owner: str) -> None:
        with self._owners_lock:
            self._owners[jobid] = owner
            self._owners.move_to_end(jobid)
            while len(self._owners) > 4096:
                self._owners.popitem(last=False)

    def _owner(self, ref: JobRef) -> str | None:
        with self._owners_lock:
            owner = self._owners.get(ref.jobid)
        if owner:
            return owner
        job = self._find(ref)
        if job is not None:
            return job.user
        record = self._accounted(ref)
        return record.user if record is not None else None

    def _accounted(self, ref: JobRef) -> AcctRecord | None:
        """``ref``'s job as accounting has it; None when accounting has no job of that id and name.

        An incomplete record (:attr:`AcctRecord.complete`) cannot say whether it is ``ref``'s job: the
        answer is to ask again shortly, when its name has arrived (a transient ClusterError), never
        another job's end, nor a job taken for unknown."""
        record = self._acct.get([ref.jobid]).get(ref.jobid)
        if record is None:
            return None
        if not record.complete:
            raise ClusterError(
                f"The accounting record of job {ref.jobid} is not complete yet (slurmdbd has its end "
                "but not yet its name); ask again shortly."
            )
        return record if record.name == PREFIX + ref.name else None

    def cleanup(self, ref: JobRef) -> None:
        owner = self._owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            return
        slurm_name = PREFIX + ref.name
        result = self.shell.run(self.cfg.layout.removal(owner, slurm_name))
        if result.rc != 0:
            raise ClusterError(f"Removing the files of job {ref.jobid} failed: {result.stderr.strip()[:300]}")

    # -- control ----------------------------------------------------------------------
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        job = self._find(ref, fresh=True)
        if job is None or job_state(job.state).finished:
            return
        self.backend.cancel(job.jobid)  # Slurm: TERM now, KILL after KillWait; the job ends CANCELLED
        if force:
            self.backend.cancel(job.jobid, "KILL")
        elif self.cfg.kill_grace > 0:
            self._later(self.cfg.kill_grace, job.jobid)
        self._snapshot.invalidate()

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

    def _invalidate(self) -> None:
        self._snapshot.invalidate()

    def release(self, ref: JobRef) -> None:
        job = self._find(ref, fresh=True)
        if job is None:
            raise NotFound(f"Job {ref.jobid} is not queued: nothing to release.")
        self.backend.release(job.jobid)
        self._snapshot.invalidate()

    def events(self, ref: JobRef) -> str:
        job = self._find(ref, fresh=True)
        if job is None:
            return f"Job {ref.jobid} ({ref.name}) is no longer known to slurmctld."
        return self.backend.show(job.jobid)

    # -- files ------------------------------------------------------------------------
    def tail(self, ref: JobRef, lines: int) -> str:
        owner = self._owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            raise NotFound(f"Job {ref.jobid} has no output.")
        return self._read_tail(self.cfg.output_file(owner, PREFIX + ref.name), lines, missing_ok=False)

    def _read_tail(self, path: str, lines: int, *, missing_ok: bool) -> str:
        result = self.shell.run(command("tail", "-n", int(lines), "--", path))
        if result.rc != 0:
            if "No such file" in result.stderr:
                if missing_ok:
                    return ""
                raise NotFound("The job has no output yet.")
            raise ClusterError(f"Reading the job output failed: {result.stderr.strip()[:300]}")
        return result.stdout

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return self._listing.list(path)

    # -- interactive jobs -----------------------------------------------------------------
    def job_file(self, status: JobStatus, name: str, limit: int = 65536) -> str | None:
        owner = status.owner or ""
        if not CLUSTER_USER_PATTERN.match(owner):
            return None
        return read_job_file(self.shell, self.cfg.job_dir(owner, PREFIX + status.ref.name), name, limit)

    def open_service(self, node: str, port: int, timeout: float) -> Stream:
        return open_service(self.shell, self._nodes, node, port, timeout)

    # -- health -------------------------------------------------------------------------
    def ping(self) -> None:
        self.backend.ping()

    def last_contact(self) -> Contact:
        return self._snapshot.last_contact or Contact(self._started, False, "no contact with the cluster yet")

    def diagnose(self, executor: Executor) -> Iterator[Check]:
        from .doctor import diagnose  # only `dssr doctor` needs it

        return diagnose(self, executor)

    def local_checks(self) -> Iterator[Check]:
        """The service user's key loads, then the backend's own (over SSH: the user-id mapping file)."""
        what = f"the service user's key ({self.cfg.service_key_setting}) loads"
        if self.shell.key_problem:
            yield failed(what, self.shell.key_problem)
        else:
            yield passed(what, self.shell.login.key.get_name())
        cfg = self.cfg
        if self.pool.policy.knows(cfg.host, cfg.port) is False:  # every connection would be refused
            yield failed(
                f"the known_hosts file holds the login node's key ({cfg.host}:{cfg.port})",
                f"JARVICE_SLURM_SSH_KNOWN_HOSTS={cfg.known_hosts!r} has no key of {cfg.host}:{cfg.port}: add it "
                f"(ssh-keyscan -p {cfg.port} {cfg.host}, checked with the cluster's administrators).",
            )
        yield from self.backend.local_checks()

    def check(self) -> list[str]:
        problems: list[str] = []
        if self.shell.key_problem:
            problems.append(self.shell.key_problem)
        problems.extend(self.backend.problems())
        try:
            self.ping()
        except ClusterError as exc:
            problems.append(str(exc))
            return problems
        problems.extend(self._check_cluster())
        return problems

    def _check_cluster(self) -> list[str]:
        problems = []
        try:
            coord = self.shell.run(
                command(
                    "sacctmgr",
                    "-n",
                    "-P",
                    "show",
                    "user",
                    self.cfg.service_user,
                    "withcoord",
                    "format=User,Coordinators",
                )
            )
            if coord.rc != 0 or not coord.stdout.strip().split("|")[-1].strip():
                problems.append(
                    f"The service user {self.cfg.service_user!r} is not coordinator of any Slurm account "
                    "(sacctmgr add coordinator account=<acct> names=jarvice): it cannot see or cancel users' jobs."
                )
            folders = [self.cfg.user_scratch(u) for u in self.backend.known_users()]
            script = "".join(f"test -w {command(f)} -a -x {command(f)} || echo {command(f)}\n" for f in folders)
            result = self.shell.run("bash -s", stdin=script.encode())
            for folder in result.stdout.splitlines():
                problems.append(
                    f"The scratch folder {folder} is not writable by {self.cfg.service_user!r} "
                    "(JARVICE_BAREMETAL_SCRATCH_DIR; see docs/slurm.md on groups or ACLs)."
                )
        except ClusterError as exc:
            problems.append(str(exc))
        return problems

    def describe(self) -> Mapping[str, str]:
        return {
            "cluster": f"{self.cfg.service_user}@{self.cfg.host}:{self.cfg.port}",
            "slurm interface": self.cfg.interface,
            "host key": self.pool.policy.describe(),
            "scratch": self.cfg.scratch,
            "status reuse": f"{self.cfg.status_ttl:g} s",
            **self.backend.describe(),
        }

    def close(self) -> None:
        with self._timers_lock:
            timers = list(self._timers)
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        self.backend.close()
        self.pool.close()


def _cli(conn: SlurmConnector, settings: Settings) -> SlurmBackend:
    return CliBackend(conn.shell, conn.pool, conn.mapping, conn.cfg)


def _rest(conn: SlurmConnector, settings: Settings) -> SlurmBackend:
    from dssr_slurm.rest import RestBackend  # lazily: only sites using slurmrestd need it

    return RestBackend.from_settings(settings, conn.shell)


#: ``JARVICE_SLURM_INTERFACE`` -> the backend that owns that way of talking to Slurm
BACKENDS: Mapping[str, Callable[[SlurmConnector, Settings], SlurmBackend]] = {"cli": _cli, "http": _rest}


#: Slurm job ids are unsigned 32-bit integers
MAX_SLURM_JOBID = 2**32 - 1


def _slurm_id(ref: JobRef) -> str:
    if numeric_id(ref.jobid, MAX_SLURM_JOBID) is None:
        raise BadRequest(f"Job id {shown(ref.jobid)} is not a Slurm job id (digits only, below 2**32).")
    return ref.jobid
