""":class:`BatchConnector`: a connector for a batch scheduler reached over SSH, less its scheduler.

Here is what every such connector does the same way: one queue listing per
snapshot shared by every request, accounting in batches, the job files on the
shared scratch, output, listings, garbage collection, the local and SSH checks,
and the steps of submit, terminate, hold and release.  No job database: a job's
owner comes from the scheduler.  A scheduler is the methods marked *hook*.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from abc import abstractmethod
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

from .._checks import Check, Contact, failed, passed
from .._config import Settings
from .._connector import Connector
from .._errors import BadRequest, ClusterError, NotFound, NotSupported
from .._executor import Executor, LaunchContext
from .._job import ExitStatus, FileEntry, Identity, JobRef, JobSpec, JobState, JobStatus, OutputChunk, Submission
from .._shell import command
from .._validate import CLUSTER_USER_PATTERN, numeric_id, shown
from ._jobs import PREFIX, EndedJob, JobPlan, QueuedJob, QueueIndex
from ._listing import FolderListing
from ._settings import BatchSettings
from ._sharing import Batcher, SharedSnapshot
from ._shell import ServiceShell, UnusablePolicy, build_pool
from ._usermap import UserMappingFile

log = logging.getLogger("dssr_core.batch.connector")

#: lines of output returned by ``exit_status``
EXIT_TAIL = 10_000
#: the exit status of an output read whose file does not exist
_MISSING = 3


class BatchConnector(Connector):
    """A batch scheduler's connector: its hooks, on the steps every such connector shares.

    A subclass sets :attr:`scheduler` and :attr:`max_jobid`, passes its settings
    (a :class:`~dssr_core.batch.BatchSettings`) to ``__init__``, and implements
    the hooks.  Every hook may block on the cluster and raises
    :class:`~dssr_core.ClusterError` when the scheduler does not answer.
    """

    requires_identity = True
    #: the scheduler's name in messages ("Slurm", "Grid Engine")
    scheduler: ClassVar[str]
    #: the scheduler's largest job id (ids are decimal digits from 1 to this)
    max_jobid: ClassVar[int]

    def __init__(self, settings: Settings, cfg: BatchSettings) -> None:
        super().__init__(settings)
        self.cfg = cfg
        self.pool = build_pool(cfg)
        self.shell = ServiceShell(self.pool, cfg)
        self.mapping = UserMappingFile(cfg.mapping_file)
        self._snapshot: SharedSnapshot[QueueIndex] = SharedSnapshot(
            lambda: QueueIndex.of(self.queue(), self.job_state, self.id_order), cfg.status_ttl
        )
        self._acct: Batcher[EndedJob] = Batcher(self.accounting)
        self._listing = FolderListing(self.shell, cfg.pvcls_roots)
        self._started = time.time()
        #: jobid -> owner of jobs whose end was just reported (so cleanup needs no second look-up)
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._owners_lock = threading.Lock()

    # -- hooks: the scheduler ---------------------------------------------------------
    @abstractmethod
    def queue(self) -> Sequence[QueuedJob]:
        """*Hook.* Every job of every user whose name starts with ``jarvice_``, in one call to the
        scheduler (the service user may see them all)."""

    @abstractmethod
    def accounting(self, jobids: Sequence[str]) -> Mapping[str, EndedJob]:
        """*Hook.* The ends of ``jobids`` as accounting has them (ids it does not know are absent);
        called with every id asked for meanwhile (:class:`~dssr_core.batch.Batcher`), so read them in as
        few calls as the scheduler allows."""

    @abstractmethod
    def job_state(self, state: str) -> JobState:
        """*Hook.* What the scheduler's state word (:attr:`QueuedJob.state`) means."""

    @abstractmethod
    def submit_job(self, plan: JobPlan) -> Submission:
        """*Hook.* Submit ``plan`` exactly once as ``plan.user``, held when ``plan.spec.held``, with
        :func:`~dssr_core.batch.submit_once` or :func:`~dssr_core.batch.once_script` (so replicas racing
        on one name make one job); the submission's script leaves every secret out.  ``BadRequest``
        for what the scheduler refuses (or what this scheduler cannot do)."""

    @abstractmethod
    def cancel(self, job: QueuedJob, force: bool) -> None:
        """*Hook.* End ``job`` (queued or running); ``force``: without any grace.  A job already gone
        is not an error."""

    @abstractmethod
    def release_job(self, job: QueuedJob) -> None:
        """*Hook.* Lift the user hold of ``job``."""

    @abstractmethod
    def show(self, job: QueuedJob) -> str:
        """*Hook.* The scheduler's own account of ``job``, for humans (``scontrol show job``, ``qstat -j``)."""

    def refuse(self, spec: JobSpec) -> None:
        """*Hook.* Raise ``BadRequest`` for what this scheduler never takes (flags it sets itself...),
        before anything else is done for the submission.  The default: nothing."""

    def hold_job(self, job: QueuedJob) -> None:
        """*Hook.* Put a user hold on the queued ``job``.  The default: ``NotSupported``."""
        raise NotSupported(f"The {self.name} connector cannot hold a job.")

    def id_order(self, jobids: Iterable[str]) -> Callable[[str], int]:
        """*Hook.* The sort key that orders ``jobids`` (ids of one name) by submission; the default:
        as integers.  A scheduler whose ids wrap orders them across the wrap."""
        return int

    def ended_elsewhere(self, ref: JobRef) -> EndedJob | None:
        """*Hook.* The end of a job accounting does not know, from what else the scheduler leaves (the
        Grid Engine connector: the mark its ``terminate`` writes in the job's folder).  The default: None."""
        return None

    def scheduler_checks(self, executor: Executor | None) -> Iterator[Check]:
        """*Hook.* ``dssr doctor``'s checks of the scheduler, run once the login host answered with the
        right host key and the service user logged in (each a verdict with its fix; never raises)."""
        return iter(())

    def user_login_checks(self) -> Iterator[Check]:
        """*Hook.* ``dssr doctor``'s checks that need nothing of the service user (each job user's own
        login), also run when the service user cannot log in.  The default: none."""
        return iter(())

    def more_local_checks(self) -> Iterator[Check]:
        """*Hook.* Local checks beside the service key's and the host key's (:meth:`local_checks`); the
        default: the user-id mapping file loads."""
        problems = self.mapping.problems()
        what = f"the user-id mapping file {self.mapping.path} is usable"
        yield failed(what, " ".join(problems)) if problems else passed(what)

    # -- submission ---------------------------------------------------------------------
    def user_for(self, identity: Identity | None) -> str:
        """The job's cluster user: the user-id mapping file's entry of the identity's e-mail."""
        return self.mapping.login_for(identity.email if identity else None).user

    def submit(self, spec: JobSpec, executor: Executor) -> Submission:
        self.refuse(spec)
        name = PREFIX + spec.name
        user = self.user_for(spec.identity)
        files = self.cfg.layout.files(user, name)
        ctx = LaunchContext(
            scratch_root=self.cfg.scratch,
            cluster_user=user,
            user_scratch=files.user_scratch,
            job_dir=files.job_dir,
            secrets_file=files.secrets_file,
        )
        submission = self.submit_job(JobPlan(spec, name, user, files, executor.launch(spec, ctx)))
        self._snapshot.invalidate()
        if submission.existed:
            log.info("job %s already exists on the cluster as %s: not submitted again", name, submission.jobid)
        return submission

    # -- state --------------------------------------------------------------------------
    def snapshot(self) -> Sequence[JobStatus]:
        return self._snapshot.get().statuses

    def status(self, ref: JobRef) -> JobStatus | None:
        status = self._snapshot.get().status_by_id.get(ref.jobid)
        if status is None or status.ref.name != ref.name:
            return None
        return replace(status, ref=ref)

    def find(self, ref: JobRef, *, fresh: bool = False) -> QueuedJob | None:
        """``ref``'s job in the queue, None when it is not there (``BadRequest`` when that id is
        another job, or not an id of this scheduler)."""
        if numeric_id(ref.jobid, self.max_jobid) is None:
            raise BadRequest(f"Job id {shown(ref.jobid)} is not a {self.scheduler} job id (1 to {self.max_jobid}).")
        if fresh:
            self._snapshot.invalidate()
        job = self._snapshot.get().by_id.get(ref.jobid)
        if job is not None and job.name != PREFIX + ref.name:
            raise BadRequest(f"{self.scheduler} job {ref.jobid} is not the job {ref.name!r}.")
        return job

    def ended(self, ref: JobRef) -> EndedJob | None:
        """``ref``'s end: accounting's record of that id and name, else :meth:`ended_elsewhere`.

        An incomplete record (:attr:`EndedJob.complete`) cannot say whether it is ``ref``'s
        job: the answer is to ask again shortly (a transient ``ClusterError``), never another
        job's end, nor a job taken for unknown."""
        record = self._acct.get([ref.jobid]).get(ref.jobid)
        if record is not None and not record.complete:
            raise ClusterError(
                f"The accounting record of job {ref.jobid} is not complete yet (the scheduler has its end "
                "but not yet its name); ask again shortly."
            )
        if record is not None and record.name == PREFIX + ref.name:
            return record
        return self.ended_elsewhere(ref)

    def exit_status(self, ref: JobRef) -> ExitStatus:
        seen: QueuedJob | EndedJob | None = self.find(ref)
        if isinstance(seen, QueuedJob):
            state, detail = self.job_state(seen.state), seen.state
            code = self._accounted_exit_code(ref) if state.finished else None
        elif (seen := self.ended(ref)) is None:
            return ExitStatus(ref=ref, state=JobState.UNKNOWN, detail="UNKNOWN")
        else:
            state, detail, code = seen.state, seen.detail, seen.exit_code
        if not state.finished:
            raise ClusterError(
                f"Job {ref.jobid} has not finished yet ({self.scheduler} says {detail}); ask again later."
            )
        end = ExitStatus(ref=ref, state=state, elapsed=seen.elapsed, detail=detail, exit_code=code)
        end = replace(end, submitted=seen.submitted, started=seen.started, ended=seen.ended)
        if not CLUSTER_USER_PATTERN.match(seen.user):
            return end
        self._remember_owner(ref.jobid, seen.user)
        output = self._read_tail(self.cfg.output_file(seen.user, PREFIX + ref.name), EXIT_TAIL, missing_ok=True)
        return replace(end, output=output, owner=seen.user)

    def _accounted_exit_code(self, ref: JobRef) -> int | None:
        """The exit code accounting holds for an ended job still in the queue (the queue does not say
        it); None while accounting has no complete record of it yet.  Batched with other look-ups."""
        try:
            record = self._acct.get([ref.jobid]).get(ref.jobid)
        except ClusterError:
            return None
        return record.exit_code if record is not None and record.complete else None

    def _remember_owner(self, jobid: str, owner: str) -> None:
        with self._owners_lock:
            self._owners[jobid] = owner
            self._owners.move_to_end(jobid)
            while len(self._owners) > 4096:
                self._owners.popitem(last=False)

    def owner(self, ref: JobRef) -> str | None:
        """The cluster user ``ref``'s job runs (or ran) as: from its end just reported, the queue, its end."""
        with self._owners_lock:
            owner = self._owners.get(ref.jobid)
        if owner:
            return owner
        job = self.find(ref)
        if job is not None:
            return job.user
        end = self.ended(ref)
        return end.user if end is not None else None

    def cleanup(self, ref: JobRef) -> None:
        owner = self.owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            return
        result = self.shell.run(self.cfg.layout.removal(owner, PREFIX + ref.name))
        if result.rc != 0:
            raise ClusterError(f"Removing the files of job {ref.jobid} failed: {result.stderr.strip()[:300]}")

    # -- control ------------------------------------------------------------------------
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        job = self.find(ref, fresh=True)
        if job is None or self.job_state(job.state).finished:
            return
        self.cancel(job, force)
        self._snapshot.invalidate()

    def hold(self, ref: JobRef) -> None:
        job = self.find(ref, fresh=True)
        if job is None or self.job_state(job.state) is not JobState.QUEUED:
            raise NotFound(f"Job {ref.jobid} is not queued: nothing to hold.")
        self.hold_job(job)
        self._snapshot.invalidate()

    def release(self, ref: JobRef) -> None:
        job = self.find(ref, fresh=True)
        if job is None:
            raise NotFound(f"Job {ref.jobid} is not queued: nothing to release.")
        self.release_job(job)
        self._snapshot.invalidate()

    def events(self, ref: JobRef) -> str:
        job = self.find(ref, fresh=True)
        if job is None:
            return f"Job {ref.jobid} ({ref.name}) is no longer known to {self.scheduler}."
        return self.show(job)

    # -- files --------------------------------------------------------------------------
    def tail(self, ref: JobRef, lines: int) -> str:
        return self._read_tail(self._output_file(ref), lines, missing_ok=False)

    def _output_file(self, ref: JobRef) -> str:
        owner = self.owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            raise NotFound(f"Job {ref.jobid} has no output.")
        return self.cfg.output_file(owner, PREFIX + ref.name)

    def _read_tail(self, path: str, lines: int, *, missing_ok: bool) -> str:
        result = self.shell.run(command("tail", "-n", int(lines), "--", path))
        if result.rc != 0:
            if "No such file" in result.stderr:
                if missing_ok:
                    return ""
                raise NotFound("The job has no output yet.")
            raise ClusterError(f"Reading the job output failed: {result.stderr.strip()[:300]}")
        return result.stdout

    def read_output(self, ref: JobRef, offset: int, limit: int = 65536) -> OutputChunk:
        """The job's output from byte ``offset``, sent back in base64 so that no byte is lost to decoding."""
        path = self._output_file(ref)
        script = (
            f"test -e {command(path)} || exit {_MISSING}; "
            f"tail -c +{int(offset) + 1} -- {command(path)} | head -c {int(limit)} | base64 -w0"
        )
        result = self.shell.run(script)
        if result.rc == _MISSING:
            raise NotFound("The job has no output yet.")
        try:
            data = base64.b64decode(result.stdout.strip(), validate=True)
        except (ValueError, binascii.Error):
            data = None
        if result.rc != 0 or data is None:
            raise ClusterError(f"Reading the job output failed: {result.stderr.strip()[:300]}")
        return OutputChunk(data, int(offset) + len(data))

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return self._listing.list(path)

    # -- health -------------------------------------------------------------------------
    def last_contact(self) -> Contact:
        return self._snapshot.last_contact or Contact(self._started, False, "no contact with the cluster yet")

    def local_checks(self) -> Iterator[Check]:
        """The service user's key loads, the known_hosts file (when given) holds the login node's key,
        then :meth:`more_local_checks`."""
        cfg = self.cfg
        what = f"the service user's key ({cfg.service_key_setting}) loads"
        if self.shell.key_problem:
            yield failed(what, self.shell.key_problem)
        else:
            yield passed(what, self.shell.login.key.get_name())
        if isinstance(self.pool.policy, UnusablePolicy):
            yield failed("the login node's host key is pinned", self.pool.policy.problem)
        elif self.pool.policy.knows(cfg.host, cfg.port) is False:  # every connection would be refused
            yield failed(
                f"the known_hosts file holds the login node's key ({cfg.host}:{cfg.port})",
                f"{cfg.variable('SSH_KNOWN_HOSTS')}={cfg.known_hosts!r} has no key of {cfg.host}:{cfg.port}: add "
                f"it (ssh-keyscan -p {cfg.port} {cfg.host}, checked with the cluster's administrators).",
            )
        yield from self.more_local_checks()

    def diagnose(self, executor: Executor | None) -> Iterator[Check]:
        """The login host answers with the right host key, the service user logs in, then the
        scheduler's checks (:meth:`scheduler_checks`).  No SSH: the list ends there; a service user
        that cannot log in: only :meth:`user_login_checks` follow."""
        cfg = self.cfg
        what = f"SSH reaches {cfg.host}:{cfg.port} with the right host key"
        try:
            seen = self.pool.check_host()
        except ClusterError as exc:
            fix = (
                f"check {cfg.variable('CLUSTER_ADDR')} and {cfg.variable('CLUSTER_PORT')}, and that this host "
                "may reach it"
                if "reach" in str(exc)
                else f"if the login node's key really is {'this one' if 'SHA256' in str(exc) else 'new'}, put it "
                f"in {cfg.variable('SSH_KNOWN_HOSTS')} (ssh-keyscan -p {cfg.port} {cfg.host}) or "
                f"{cfg.variable('SSH_HOST_KEY')}"
            )
            yield failed(what, f"{exc} Fix: {fix}.")
            return
        yield passed(what, f"{seen} ({self.pool.policy.describe()})")
        what = f"the service user {cfg.service_user!r} logs in with {cfg.variable('SSH_PKEY')}"
        try:
            whoami = self.shell.run(command("id", "-un"), kind="doctor").stdout.strip()
        except ClusterError as exc:
            yield failed(
                what,
                f"{exc} Fix: add the public half of the key to ~{cfg.service_user}/.ssh/authorized_keys on the "
                f"login node, or set {cfg.variable('SSH_USER')} to the key's user.",
            )
            yield from self.user_login_checks()
            return
        yield passed(what, f"logged in as {whoami}")
        yield from self.scheduler_checks(executor)

    def describe(self) -> Mapping[str, str]:
        return {
            "cluster": f"{self.cfg.service_user}@{self.cfg.host}:{self.cfg.port}",
            "host key": self.pool.policy.describe(),
            "scratch": self.cfg.scratch,
            "status reuse": f"{self.cfg.status_ttl:g} s",
        }

    def close(self) -> None:
        self.pool.close()
