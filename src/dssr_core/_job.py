"""The job model: plain dataclasses and enums shared by the server, the library and plugins."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ._errors import BadRequest
from ._validate import (
    MAX_INT64,
    MAX_NODES,
    shown,
    validate_name,
    validate_number,
)

if TYPE_CHECKING:
    from ._interactive import ServiceAccess


class JobState(enum.Enum):
    """Where a job is in its life, with the legacy ``rc`` of each end state."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def rc(self) -> int:
        """The job's result as JARVICE counts it: 0 completed, 1 failed, -15 cancelled, -9 anything else."""
        return _RC[self]

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


_RC = {
    JobState.COMPLETED: 0,
    JobState.FAILED: 1,
    JobState.CANCELLED: -15,
    JobState.UNKNOWN: -9,
    JobState.QUEUED: -9,
    JobState.RUNNING: -9,
}


@dataclass(frozen=True)
class JobRef:
    """How the upstream names a job: its name, its number and the downstream's id."""

    name: str
    number: int
    jobid: str


@dataclass(frozen=True)
class Identity:
    """The verified user behind a submission (from the upstream's bearer token)."""

    email: str | None
    username: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: the raw token; some connectors hand it on (slurmrestd).  Never logged or shown.
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class UpstreamTemplate:
    """An upstream template submission (``hpc_script``) and the keys read from it."""

    text: str = field(repr=False)
    appdef_version: int = 2
    arch: str = "amd64"
    app: str = ""
    repo: str = ""
    #: ``auths`` of the decoded ``JOBOBJ_CTRSECRET`` (registry -> {"auth": ...}); secret
    registry_auths: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: ``JOBOBJ_DOCKER_SECRET`` ({"server", "username", "password"}); secret
    docker_secret: Mapping[str, str] = field(default_factory=dict, repr=False)
    upstream_user: str = ""
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobSpec:
    """What to run, and with which resources.

    Built from an upstream template (:func:`dssr_core.parse_template`) or
    directly by library users for a *native* submission (``image`` + ``command``).
    """

    name: str
    number: int = 0
    nodes: int = 1
    #: cores per node
    cores: int = 1
    #: GPUs per node
    gpus: int = 0
    #: memory per node, GB (0: the scheduler's default)
    memory_gb: int = 0
    #: time limit, scheduler syntax (``HH:MM:SS``, ``D-HH:MM:SS``); None: the partition's default
    walltime: str | None = None
    partition: str | None = None
    licenses: str | None = None
    exclusive: bool = True
    #: extra scheduler flags (``sbatch_<flag>=V`` pseudo-devices): flag -> value
    scheduler_flags: Mapping[str, str] = field(default_factory=dict)
    #: overlay size in MB for container executors (None: the executor's setting)
    overlay_mb: int | None = None
    image: str | None = None
    command: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    interactive: bool = False
    #: the connect URL template of an interactive command (the AppDef command's ``url``);
    #: None: the image's ``/etc/NAE/url.txt``
    url: str | None = None
    #: set by :class:`~dssr_core.Downstream` for an interactive job: its label, port and secrets
    service: "ServiceAccess | None" = field(default=None, repr=False)
    held: bool = False
    arch: str = "amd64"
    template: UpstreamTemplate | None = None
    identity: Identity | None = None

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_number(self.number)
        for attr, low, high in (
            ("nodes", 1, MAX_NODES),
            ("cores", 1, MAX_INT64),
            ("gpus", 0, MAX_INT64),
            ("memory_gb", 0, MAX_INT64),
        ):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise BadRequest(f"{attr} must be an integer from {low} to {high}, not {shown(value)}.")
        if self.overlay_mb is not None and (
            not isinstance(self.overlay_mb, int) or not 0 <= self.overlay_mb <= MAX_INT64
        ):
            raise BadRequest(f"overlay must be an integer >= 0 (MB), not {shown(self.overlay_mb)}.")
        if self.template is None and not self.command:
            raise BadRequest("A job needs a command (or an upstream template).")

    @property
    def effective_exclusive(self) -> bool:
        """Exclusive node use: the default, and always for interactive or GPU jobs."""
        return self.exclusive or self.interactive or self.gpus > 0

    def replace(self, **changes: Any) -> "JobSpec":
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """What this spec asks for, as a short text a connector keeps with the job (:attr:`JobStatus.spec_digest`):
        a hash per field of :data:`DIGEST_FIELDS`, so :meth:`digest_differences` can name what differs."""
        values = [getattr(self, name) for name in DIGEST_FIELDS]
        values[-1] = sorted(self.environment.items())
        text = [json.dumps(value, sort_keys=True, default=str) for value in values]
        return DIGEST_TAG + ".".join(hashlib.blake2s(t.encode(), digest_size=3).hexdigest() for t in text)

    @staticmethod
    def digest_differences(kept: str, new: str) -> tuple[str, ...]:
        """The fields of :data:`DIGEST_FIELDS` whose hashes differ between two :meth:`digest` texts
        (none when either is not a digest: nothing is known)."""
        parts = [d[len(DIGEST_TAG) :].split(".") if d.startswith(DIGEST_TAG) else [] for d in (kept, new)]
        if not all(len(p) == len(DIGEST_FIELDS) for p in parts):
            return ()
        return tuple(name for name, a, b in zip(DIGEST_FIELDS, *parts, strict=True) if a != b)


#: the fields of a :class:`JobSpec` its :meth:`~JobSpec.digest` covers (``held`` is an instruction, not the job)
DIGEST_FIELDS = (
    "number",
    "nodes",
    "cores",
    "gpus",
    "memory_gb",
    "walltime",
    "partition",
    "exclusive",
    "image",
    "command",
    "environment",
)
DIGEST_TAG = "dssr1-"


@dataclass(frozen=True)
class JobStatus:
    """A job as the scheduler sees it now."""

    ref: JobRef
    state: JobState
    #: node names, expanded (``["node1", "node2"]``); empty while queued
    nodes: tuple[str, ...] = ()
    #: ``HH:MM:SS``, hours unbounded
    elapsed: str = "00:00:00"
    #: the cluster user owning the job, when the scheduler says
    owner: str | None = None
    #: the scheduler's own word for the state (``RUNNING``, ``PD``...), for humans
    detail: str = ""
    #: why a queued job waits, in the scheduler's words (``Priority``, ``JobHeldUser``); empty when not said
    reason: str = ""
    #: when the job was submitted and started (seconds since the epoch), when the scheduler says
    submitted: float | None = None
    started: float | None = None
    #: the :meth:`JobSpec.digest` the job was submitted with, when the connector keeps it
    spec_digest: str = ""


@dataclass(frozen=True)
class ExitStatus:
    """How a finished job ended, what the upstream receives from ``/exitstatus``."""

    ref: JobRef
    state: JobState
    elapsed: str = "00:00:00"
    #: the tail of the job's output (up to 10,000 lines); empty once collected
    output: str = ""
    #: the scheduler's word for the end state (``COMPLETED``, ``TIMEOUT``...)
    detail: str = ""
    #: the cluster user the job ran as, when the connector says
    owner: str | None = None
    #: the exit code of the job's script (0-255), when the scheduler recorded it
    exit_code: int | None = None
    #: when the job was submitted, started and ended (seconds since the epoch), when the scheduler says
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def rc(self) -> int:
        return self.state.rc

    @property
    def end_state(self) -> str:
        """How the job ended in the scheduler's words (:attr:`detail`), else the state's name (``COMPLETED``)."""
        return self.detail or self.state.name

    @property
    def termination_line(self) -> str:
        """The line that closes a finished job's output, for the upstream (``exitstatus``) and ``dssr exitstatus``."""
        return f"<< termination state: {self.end_state} -- see STDOUT for job errors >>"


@dataclass(frozen=True)
class Submission:
    """What ``submit`` returns: the downstream's job id and the final script without secrets."""

    jobid: str
    script: str = ""
    #: True when a job of that name already existed and nothing was submitted
    existed: bool = False


@dataclass(frozen=True)
class JobInfo:
    """What the upstream may show about a job beside its state (the legacy ``info``)."""

    #: the link to an interactive job's application, once it accepts connections
    url: str | None = None
    #: an interactive job's help page (HTML), once the job has written it
    help: str | None = None


@dataclass(frozen=True)
class FileEntry:
    """One entry of a folder listing (``pvcls``)."""

    path: str
    is_dir: bool
    mtime: int = 0
    size: int = 0


@dataclass(frozen=True)
class OutputChunk:
    """A piece of a job's output read from a byte offset (:meth:`Connector.read_output`)."""

    data: bytes
    #: the offset to read from next (the offset asked for + ``len(data)``)
    offset: int


@dataclass(frozen=True)
class NodeInfo:
    """One compute node and what it has: CPUs, GPUs, memory (MB), total and free now."""

    name: str
    state: str
    partitions: tuple[str, ...] = ()
    cpus: int = 0
    free_cpus: int = 0
    gpus: int = 0
    free_gpus: int = 0
    memory_mb: int = 0
    free_memory_mb: int = 0


@dataclass(frozen=True)
class PartitionInfo:
    """One partition (queue) and its nodes' names."""

    name: str
    state: str
    nodes: tuple[str, ...] = ()
    default: bool = False


@dataclass(frozen=True)
class ClusterInfo:
    """The cluster's partitions and nodes from one look (:meth:`Connector.cluster`)."""

    partitions: tuple[PartitionInfo, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
