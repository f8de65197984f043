"""What the Slurm connector needs from Slurm, whichever way it talks to it.

Two implementations: :mod:`dssr_slurm.cli` (``squeue``/``sacct``/``sbatch``
over SSH, ``JARVICE_SLURM_INTERFACE=cli``) and :mod:`dssr_slurm.rest`
(slurmrestd, ``JARVICE_SLURM_INTERFACE=http``).  Everything above this line
(state mapping, snapshot sharing, output files, garbage collection) is common
and lives in :mod:`dssr_slurm.connector`.  Every method may block; each raises
:class:`~dssr_core.ClusterError` when Slurm does not answer or answers with an
error, and :class:`~dssr_core.BadRequest` when Slurm refuses what was sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from dssr_core import Identity

#: Slurm job names of this downstream start with this prefix.
PREFIX = "jarvice_"


@dataclass(frozen=True)
class SlurmJob:
    """A job as slurmctld sees it (``squeue`` line or ``/jobs`` entry)."""

    jobid: str
    #: the full Slurm job name (``jarvice_<name>``)
    name: str
    user: str
    #: Slurm's long state name: ``PENDING``, ``RUNNING``, ``COMPLETED``...
    state: str
    #: ``HH:MM:SS``
    elapsed: str = "00:00:00"
    nodes: tuple[str, ...] = ()
    reason: str = ""


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


class SlurmBackend(ABC):
    """One way of talking to Slurm."""

    @abstractmethod
    def queue(self) -> list[SlurmJob]:
        """Every job in slurmctld whose name starts with ``jarvice_``, of every user
        (the service user is coordinator).  One call to Slurm."""

    @abstractmethod
    def accounting(self, jobids: Iterable[str]) -> dict[str, AcctRecord]:
        """Accounting records of ``jobids`` (ids absent from accounting are absent
        from the answer).  At most 50 ids per call to Slurm."""

    @abstractmethod
    def submit(self, request: BatchRequest, identity: Identity | None) -> str:
        """Submit as ``request.user`` (cli: SSH with the user's key; http: the user's
        token from ``identity``); return the Slurm job id."""

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

    def close(self) -> None:
        """Release connections."""
