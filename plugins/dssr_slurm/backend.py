"""What the Slurm connector needs from Slurm, whichever way it talks to it.

Two implementations: :mod:`dssr_slurm.cli` (``squeue``/``sacct``/``sbatch``
over SSH, ``JARVICE_SLURM_INTERFACE=cli``) and :mod:`dssr_slurm.rest`
(slurmrestd, ``JARVICE_SLURM_INTERFACE=http``).  Each owns its whole submit
path (which cluster user, where the job's files are written, how the job is
submitted exactly once with :func:`dssr_core.batch.submit_once`).  Everything else
(state mapping, snapshot sharing, output files, garbage collection) is common
and lives in :mod:`dssr_slurm.connector`.  Every method may block; each raises
:class:`~dssr_core.ClusterError` when Slurm does not answer or answers with an
error, and :class:`~dssr_core.BadRequest` when Slurm refuses what was sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from dssr_core import Check, ClusterInfo, Identity, Submission
from dssr_core.batch import JobPlan, Login, NamedJob, QueuedJob

from .states import job_state

#: The name of a record slurmdbd made from a job's end alone.  slurmctld sends a job's start record
#: (with its name) and its end record separately; a job that ends before its start record was sent
#: (within seconds of starting) has its end stored first, under this name, until the start record
#: that slurmctld then sends fills the name in (slurmdbd: as_mysql_job_complete creates the record,
#: as_mysql_job_start's ``on duplicate key update`` names it; seen on 22.05 through slurmrestd).
PLACEHOLDER_NAME = "allocation"


@dataclass(frozen=True)
class AcctRecord:
    """A job as accounting (slurmdbd) sees it."""

    jobid: str
    name: str
    user: str
    #: long state name, without ``by <uid>`` (``CANCELLED``)
    state: str
    #: ``HH:MM:SS``
    elapsed: str = "00:00:00"
    #: ``rc:signal`` as sacct prints it
    exit_code: str = "0:0"
    #: seconds since the epoch; None when accounting does not say
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def complete(self) -> bool:
        """False while slurmdbd has the job's end but not yet its start (:data:`PLACEHOLDER_NAME`): the
        state and exit code are the job's, but nothing says which job it is until its name arrives."""
        return self.name != PLACEHOLDER_NAME


def named_job(job: QueuedJob) -> NamedJob:
    """A job as :func:`dssr_core.batch.submit_once` sees it (held: Slurm's reason is the user's own hold)."""
    return NamedJob(
        jobid=job.jobid,
        held=job.state == "PENDING" and job.reason == "JobHeldUser",
        finished=job_state(job.state).finished,
    )


@dataclass(frozen=True)
class BatchRequest:
    """A batch job to submit, in scheduler terms (built by the connector from a JobSpec)."""

    #: full Slurm name, ``jarvice_<name>``
    name: str
    #: the cluster user the job runs as
    user: str
    #: the whole batch script text (no secret in it)
    script: str
    nodes: int
    #: total tasks (cores per node x nodes)
    ntasks: int
    exclusive: bool
    workdir: str
    #: stdout and stderr, one file
    output: str
    memory_gb: int = 0
    gpus_per_node: int = 0
    time_limit: str | None = None
    partition: str | None = None
    licenses: str | None = None
    hold: bool = False
    #: extra ``--flag=value`` options (validated pseudo-devices)
    extra: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)

    def sbatch_options(self) -> list[str]:
        """The request as ``sbatch`` command-line options (unquoted words)."""
        opts = [
            f"--job-name={self.name}",
            f"--nodes={self.nodes}",
            f"--ntasks={self.ntasks}",
            f"--output={self.output}",
            f"--chdir={self.workdir}",
            "--parsable",
        ]
        if self.exclusive:
            opts.append("--exclusive")
        if self.memory_gb:
            opts.append(f"--mem={self.memory_gb}G")
        if self.gpus_per_node:
            opts.append(f"--gpus-per-node={self.gpus_per_node}")
        if self.time_limit:
            opts.append(f"--time={self.time_limit}")
        if self.licenses:
            opts.append(f"--licenses={self.licenses}")
        if self.partition:
            opts.append(f"--partition={self.partition}")
        if self.hold:
            opts.append("--hold")
        opts.extend(f"--{flag}={value}" for flag, value in self.extra.items())
        return opts


def batch_request(
    plan: JobPlan, script: str, *, workdir: str, environment: Mapping[str, str] | None = None
) -> BatchRequest:
    """The batch request of ``plan`` running ``script`` (not held: submit-once holds it)."""
    spec = plan.spec
    return BatchRequest(
        name=plan.name,
        user=plan.user,
        script=script,
        nodes=spec.nodes,
        ntasks=spec.cores * spec.nodes,
        exclusive=spec.effective_exclusive,
        workdir=workdir,
        output=plan.files.output,
        memory_gb=spec.memory_gb,
        gpus_per_node=spec.gpus,
        time_limit=spec.walltime,
        partition=spec.partition,
        licenses=spec.licenses,
        # the spec's digest where the connector reads it back with the job's state (a comment the spec
        # gives wins: then nothing tells whether a later submission of the name asks the same)
        extra={"comment": spec.digest(), **spec.scheduler_flags},
        environment=dict(environment or {}),
    )


class SlurmBackend(ABC):
    """One way of talking to Slurm."""

    @abstractmethod
    def queue(self) -> list[QueuedJob]:
        """Every job in slurmctld whose name starts with ``jarvice_``, of every user
        (the service user is coordinator).  One call to Slurm."""

    @abstractmethod
    def accounting(self, jobids: Iterable[str]) -> dict[str, AcctRecord]:
        """Accounting records of ``jobids`` (ids absent from accounting are absent
        from the answer).  At most 50 ids per call to Slurm."""

    @abstractmethod
    def user_for(self, identity: Identity | None) -> str:
        """The cluster user a job of ``identity`` runs as (cli: the user-id mapping file;
        http: the token's user claim).  BadRequest when there is none."""

    @abstractmethod
    def submit(self, plan: JobPlan) -> Submission:
        """Submit ``plan`` exactly once as its user, through submit-once (held when
        ``plan.spec.held``): the job id, whether it already existed, the submitted script
        with every secret left out."""

    @abstractmethod
    def cancel(self, jobid: str, signal: str | None = None) -> None:
        """``scancel`` (``signal`` e.g. ``TERM``; None: Slurm's default, KILL).  A job
        already gone is not an error."""

    @abstractmethod
    def release(self, jobid: str) -> None:
        """Release a held job."""

    @abstractmethod
    def show(self, jobid: str) -> str:
        """Human-readable details of a job (``scontrol show job`` text)."""

    @abstractmethod
    def ping(self) -> None:
        """Return when slurmctld answers; raise ClusterError otherwise."""

    def cluster(self) -> ClusterInfo | None:
        """The cluster's partitions and nodes through this way of talking to Slurm; None (the
        default): the connector asks ``scontrol`` over SSH."""
        return None

    def local_checks(self) -> Iterator[Check]:
        """What this way of talking to Slurm needs on this host, checked without the cluster
        (:meth:`dssr_core.Connector.local_checks`; never raises).  The default: none."""
        return iter(())

    def describe(self) -> dict[str, str]:
        """Lines for the start-up report (never a secret)."""
        return {}

    def diagnose(self) -> Iterator[Check]:
        """``dssr doctor``'s checks of this way of talking to Slurm, run once SSH and Slurm's own
        commands answered: each a verdict with its fix (never raises)."""
        return iter(())

    def user_login_checks(self) -> Iterator[Check]:
        """``dssr doctor``'s checks of each job user's own login, which need nothing of the service user
        (run even when the service user cannot log in; never raises).  The default: none."""
        return iter(())

    def probe_login(self) -> Login | None:
        """The login ``dssr doctor`` runs the executor's node probes as (a user allowed to run jobs);
        None: the service user."""
        return None

    def close(self) -> None:
        """Release connections."""
