"""The Connector contract: how jobs reach a scheduler and how their state is read back.

A connector owns the scheduler: submission, the list of this downstream's
jobs, their end states, their output.  It is built once per server
(``load_connector(name, settings)``), its methods are called from many threads
at once, and every method may block on the cluster.

Errors: :class:`~dssr_core.errors.BadRequest` for what the caller sent wrong,
:class:`~dssr_core.errors.NotFound` for output that does not exist yet,
:class:`~dssr_core.errors.ClusterError` for a cluster that did not answer or
answered with an error.  A failed poll of the scheduler is a ``ClusterError``,
never a verdict on the jobs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterator, Mapping, Protocol, Sequence

from ._checks import Check, Contact, failed, passed
from ._config import Settings
from ._errors import NotSupported, PluginError
from ._executor import Executor
from ._job import (
    ClusterInfo,
    ExitStatus,
    FileEntry,
    Identity,
    JobInfo,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    OutputChunk,
    Submission,
)
from ._validate import parse_int


class Stream(Protocol):
    """A connected byte stream: a socket, or an SSH channel (``paramiko.Channel``)."""

    def sendall(self, data: bytes, /) -> Any: ...
    def recv(self, size: int, /) -> bytes: ...
    def settimeout(self, timeout: float | None, /) -> Any: ...
    def fileno(self) -> int: ...
    def close(self) -> Any: ...


class Connector(ABC):
    """Base of every connector plugin (entry-point group ``dssr.connectors``)."""

    #: the name the connector is registered under
    name: ClassVar[str] = ""
    #: True when submissions must carry a verified user identity (the upstream's
    #: bearer token) because jobs run as that user on the cluster
    requires_identity: ClassVar[bool] = False
    #: True when the connector implements :meth:`job_file` and :meth:`open_service`,
    #: which interactive jobs need (their app is reached through the server's proxy)
    supports_interactive: ClassVar[bool] = False
    #: the executor this connector's jobs get when ``JARVICE_BAREMETAL_EXECUTOR`` names none
    #: (None: the variable must be set)
    default_executor: ClassVar[str | None] = None
    #: True when jobs run on the server's own host, as the server's user (the ``local`` connector):
    #: ``dssr-server`` then listens on loopback unless told otherwise
    runs_jobs_here: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        """Read the connector's settings; raise :class:`~dssr_core.errors.ConfigError`
        on a bad value.  Must not fail because the cluster is unreachable: report
        that through :meth:`check` and :meth:`ping` so the server can still start."""
        self.settings = settings

    # -- submission ---------------------------------------------------------
    @abstractmethod
    def submit(self, spec: JobSpec, executor: Executor) -> Submission:
        """Submit ``spec``, its nodes running ``executor``'s node script.

        Returns the scheduler's job id and the final script with every secret
        removed.  Idempotent by name: if this downstream already has a job named
        ``spec.name`` on the cluster, returns its id without submitting again.
        Raises ``BadRequest`` (the spec cannot run here: unknown user, bad flag)
        or ``ClusterError``.
        """

    # -- state --------------------------------------------------------------
    @abstractmethod
    def snapshot(self) -> Sequence[JobStatus]:
        """Every queued or running job of this downstream, of every user.

        May serve a cached snapshot a short while (a few seconds); concurrent
        callers should share one refresh.  Raises ``ClusterError``.
        """

    def status(self, ref: JobRef) -> JobStatus | None:
        """The job's current status, or None when it is neither queued nor running
        (or when ``ref.jobid`` is a job of another name)."""
        for job in self.snapshot():
            if job.ref.jobid == ref.jobid and job.ref.name == ref.name:
                return job
        return None

    @abstractmethod
    def exit_status(self, ref: JobRef) -> ExitStatus:
        """How the job ended, with the tail of its output (up to 10,000 lines).

        A job unknown to the scheduler is ``JobState.UNKNOWN`` (rc -9).  A job
        whose record is not final yet raises ``ClusterError(transient=True)``,
        so that the upstream asks again.  Calling it after :meth:`cleanup`
        still answers (with empty output).
        """

    @abstractmethod
    def cleanup(self, ref: JobRef) -> None:
        """Remove the job's output and working folder (best effort, never raises for
        files already gone).  Called after :meth:`exit_status` has answered."""

    # -- control ------------------------------------------------------------
    @abstractmethod
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        """Stop the job: TERM then KILL after a grace period, or KILL at once with
        ``force``.  A job already finished is not an error.  Raises ``ClusterError``."""

    @abstractmethod
    def release(self, ref: JobRef) -> None:
        """Let a held job start; a queued job that is not held is left as it is.

        Raises ``NotFound`` when this downstream has no such queued job (the
        upstream reads a 5xx as "ask again", so an unknown job must not be one),
        ``ClusterError`` when the cluster fails.
        """

    def hold(self, ref: JobRef) -> None:
        """Keep a queued job from starting until :meth:`release`; a held job stays held.

        Raises ``NotFound`` when this downstream has no such queued job,
        ``ClusterError`` when the cluster fails, ``NotSupported`` (the
        default) when the connector cannot hold jobs.
        """
        raise NotSupported(f"The {self.name} connector cannot hold jobs.")

    @abstractmethod
    def events(self, ref: JobRef) -> str:
        """Human-readable details of the job (for Slurm: ``scontrol show job``)."""

    # -- files --------------------------------------------------------------
    @abstractmethod
    def tail(self, ref: JobRef, lines: int) -> str:
        """The last ``lines`` lines of the job's output; ``NotFound`` when there is none yet."""

    def read_output(self, ref: JobRef, offset: int, limit: int = 65536) -> OutputChunk:
        """At most ``limit`` bytes of the job's output from byte ``offset`` on (fewer, even none,
        when no more is written yet), and the offset to read from next.

        Lets a follower read each byte exactly once, in order, however often it
        asks.  ``NotFound`` when the job has no output (yet), ``ClusterError``
        when the cluster fails, ``NotSupported`` (the default) when the
        connector cannot read output by offset.  May block on the cluster.
        """
        raise NotSupported(f"The {self.name} connector cannot follow a job's output.")

    @abstractmethod
    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        """Entries of folder ``path`` on the cluster's shared storage (one level).

        Paths are relative to the storage roots the site allows; a path that
        escapes them raises ``BadRequest``.  ``FileEntry.path`` is the path as
        the upstream should show it (without the ``/data`` prefix).
        """

    # -- health -------------------------------------------------------------
    @abstractmethod
    def ping(self) -> None:
        """Return when the cluster answers; raise ``ClusterError`` when it does not."""

    def local_checks(self) -> Iterator[Check]:
        """Checks of what this connector needs on this host, made without contacting the cluster
        (a key that loads, a file that parses), one :class:`~dssr_core.checks.Check` each.

        A failed one is a fault the connector cannot work without: ``dssr-server``
        refuses to start (exit 2, the check's ``why`` as its one line, which names the
        variable to fix, never a secret) and ``dssr doctor`` prints each before the
        cluster checks (:meth:`diagnose`).  Never raises.  The default: none.
        """
        return iter(())

    def last_contact(self) -> Contact | None:
        """The outcome and time of the latest exchange with the cluster, without contacting it.

        ``/ready`` answers from this alone, so it must not block on the cluster:
        return what the shared snapshot (or any other call) last saw.  A
        connector that has not reached its cluster yet returns a failed
        :class:`~dssr_core.checks.Contact` saying so.  The default, None, means
        "not tracked": ``/ready`` then says ready whenever the server runs.
        """
        return None

    def diagnose(self, executor: Executor | None) -> Iterator[Check]:
        """Every check of the site's set-up this connector knows that needs the cluster, one at a time:
        the one path of both ``dssr doctor`` and the server's start-up report.

        Yields :class:`~dssr_core.Check` verdicts, each saying what to change
        when it fails; never raises for a cluster fault (that is a failed
        check).  Given an executor (``dssr doctor``), also runs
        ``executor.node_probes()`` on the compute nodes; with None (the start-up
        report, which must not wait for busy nodes) it leaves them out.  Run after
        :meth:`local_checks`.  The default checks that the cluster answers (:meth:`ping`).
        """
        try:
            self.ping()
        except Exception as exc:  # noqa: BLE001 - a verdict, not an error
            yield failed(f"the {self.name} cluster answers", str(exc))
            return
        yield passed(f"the {self.name} cluster answers")

    def info(self, ref: JobRef) -> JobInfo:
        """What to show about a job beside its state.  The default: nothing (batch jobs);
        interactive jobs' links come from :class:`~dssr_core.Downstream`'s job services."""
        return JobInfo()

    # -- interactive jobs (when supports_interactive) -------------------------
    def job_file(self, status: JobStatus, name: str, limit: int = 65536) -> str | None:
        """The text (at most ``limit`` bytes) of file ``name`` in the running job's
        :data:`~dssr_core.interactive.SERVICE_DIR` folder, which the job's first node
        writes when an interactive job starts; None when there is no such file.

        ``name`` is a plain file name (the caller's constants).  May block on the
        cluster; raises ``ClusterError``.
        """
        raise PluginError(f"The {self.name} connector does not support interactive jobs.")

    def open_service(self, node: str, port: int, timeout: float) -> Stream:
        """A byte stream connected to ``port`` on the job node ``node`` (a name from
        :attr:`JobStatus.nodes`), as seen from the cluster (for Slurm: through an
        SSH ``direct-tcpip`` channel from the login node to the node's address).

        Raises ``ClusterError`` when nothing accepts the connection within ``timeout``
        seconds (the app is not listening yet, or the cluster cannot be reached).
        """
        raise PluginError(f"The {self.name} connector does not support interactive jobs.")

    # -- who and what (optional) ---------------------------------------------------
    def user_for(self, identity: Identity) -> str | None:
        """The cluster user jobs submitted with ``identity`` run as (what :attr:`JobStatus.owner`
        and :attr:`ExitStatus.owner` say of them); None (the default) when this connector does
        not run jobs as separate users.  Raises ``BadRequest`` when no cluster user is mapped to
        ``identity``; never contacts the cluster (a mapping file or the token's claims)."""
        return None

    def cluster(self) -> ClusterInfo:
        """The cluster's partitions and nodes, with each node's total and free CPUs, GPUs and
        memory, from one look at the scheduler (not one call per node).

        Raises ``ClusterError`` when the cluster fails, ``NotSupported`` (the
        default) when the connector cannot describe its cluster.  May block.
        """
        raise NotSupported(f"The {self.name} connector cannot describe its cluster.")

    def describe(self) -> Mapping[str, str]:
        """Settings worth a line in the start-up report (never a secret)."""
        return {}

    def close(self) -> None:
        """Release connections and threads.  Idempotent."""

    # -- helpers shared by implementations ----------------------------------
    @staticmethod
    def check_lines(lines: object, default: int = 100, maximum: int = 10_000) -> int:
        """Validate a ``lines`` count: a positive integer (ASCII digits), capped at ``maximum``."""
        if lines is None:
            return default
        return min(parse_int(lines, "lines", 1), maximum)


def split_by_state(jobs: Sequence[JobStatus]) -> tuple[list[JobStatus], list[JobStatus]]:
    """(running, queued) out of a snapshot."""
    running = [j for j in jobs if j.state is JobState.RUNNING]
    queued = [j for j in jobs if j.state is JobState.QUEUED]
    return running, queued
