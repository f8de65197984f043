"""The Executor contract: what runs on each node of a job.

An executor turns a :class:`~dssr_core.job.JobSpec` into a *node script*: a
bash script that the connector runs once per node of the job, with the
scheduler-neutral variables below exported first::

    PROCESS_PROCID  PROCESS_NODENAME  JOB_JOBID  JOB_JOB_NODELIST
    JOB_JOB_FORMATED_NODELIST  JOB_NNODES  JOB_NTASKS  JOB_SUBMIT_DIR  JOB_GPUS_PER_NODE

The node script must work under any connector that sets them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

from ._checks import NodeProbe
from ._config import Settings
from ._job import JobSpec

#: The variables every connector exports on each node before the node script runs.
NODE_VARIABLES = (
    "PROCESS_PROCID",
    "PROCESS_NODENAME",
    "JOB_JOBID",
    "JOB_JOB_NODELIST",
    "JOB_JOB_FORMATED_NODELIST",
    "JOB_NNODES",
    "JOB_NTASKS",
    "JOB_SUBMIT_DIR",
    "JOB_GPUS_PER_NODE",
)


@dataclass(frozen=True)
class LaunchContext:
    """Where a job lives on the cluster, as the connector decided (paths as the nodes see them)."""

    #: the shared scratch root (``JARVICE_BAREMETAL_SCRATCH_DIR``)
    scratch_root: str
    #: the cluster user the job runs as
    cluster_user: str
    #: the user's own scratch folder (``<scratch>/users/<user>``)
    user_scratch: str
    #: this job's own folder (created by the connector before the job starts)
    job_dir: str
    #: a file, readable only by the job's user, that the connector fills with
    #: :attr:`Launch.secrets` as ``export`` lines; the node script may source it
    secrets_file: str


@dataclass(frozen=True)
class Launch:
    """What an executor gives the connector for one job."""

    #: bash text run once per node, in ``job_dir``, with the node variables set
    node_script: str
    #: variables holding credentials: never in a script, written by the connector
    #: to :attr:`LaunchContext.secrets_file` (mode 0600) and removed at garbage collection
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: when set, rank 0 succeeded iff its output holds this line (upstream templates
    #: print it); when None, rank 0's exit code is the job's
    success_marker: str | None = None


class Executor(ABC):
    """Base of every executor plugin (entry-point group ``dssr.executors``).

    Executors are built once per server with the process settings
    (``load_executor(name, settings)``) and must be safe to call from several
    threads.  They never talk to the cluster: they only write scripts.
    """

    #: the name the executor is registered under
    name: ClassVar[str] = ""
    #: True when the job's command runs confined (in a container), not as is on the node's host
    confines_jobs: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        """Read the executor's own settings; raise :class:`~dssr_core.errors.ConfigError` on a bad value."""
        self.settings = settings

    @abstractmethod
    def launch(self, spec: JobSpec, ctx: LaunchContext) -> Launch:
        """Return the node script (and secrets) for ``spec`` placed at ``ctx``.

        For an upstream template (``spec.template``), fill its
        ``{DOWNSTREAM_PARAMETERS}`` block; for a native spec, write the whole launch.
        Raises :class:`~dssr_core.errors.BadRequest` when the spec cannot run
        with this executor (e.g. a native spec without an image for a container runtime).
        Does not block.
        """

    def describe(self) -> Mapping[str, str]:
        """Settings worth a line in the start-up report (never a secret)."""
        return {}

    def node_probes(self) -> Sequence[NodeProbe]:
        """Checks to run on each compute node (``dssr doctor``), e.g. that the runtime is installed.

        The connector runs each probe's script on the nodes; none by default.
        """
        return ()
