"""dssr_core: the jarvice-dssr library (job model, plugin contracts, legacy API logic).

Imports neither Flask nor any plugin; plugins are found through entry points.
"""

from . import metrics
from .checks import Check, Contact, NodeProbe
from .config import ServerSettings, Settings
from .connector import Connector, split_by_state
from .downstream import Downstream
from .errors import BadRequest, ClusterError, ConfigError, DssrError, NotFound, PluginError
from .executor import NODE_VARIABLES, Executor, Launch, LaunchContext
from .formats import elapsed_seconds, expand_nodelist, format_seconds, normalize_elapsed
from .identity import TokenVerifier
from .job import (
    ExitStatus,
    FileEntry,
    Identity,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    Submission,
    UpstreamTemplate,
    validate_jobid,
    validate_name,
)
from .plugins import available_connectors, available_executors, load_connector, load_executor
from .shell import command, exports
from .upstream import fill_template, parse_submission, parse_template

__version__ = "0.1.0"

__all__ = [
    "BadRequest",
    "Check",
    "ClusterError",
    "ConfigError",
    "Connector",
    "Contact",
    "Downstream",
    "DssrError",
    "Executor",
    "ExitStatus",
    "FileEntry",
    "Identity",
    "JobRef",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Launch",
    "LaunchContext",
    "NODE_VARIABLES",
    "NodeProbe",
    "NotFound",
    "PluginError",
    "ServerSettings",
    "Settings",
    "Submission",
    "TokenVerifier",
    "UpstreamTemplate",
    "available_connectors",
    "available_executors",
    "command",
    "elapsed_seconds",
    "expand_nodelist",
    "exports",
    "fill_template",
    "format_seconds",
    "load_connector",
    "load_executor",
    "metrics",
    "normalize_elapsed",
    "parse_submission",
    "parse_template",
    "split_by_state",
    "validate_jobid",
    "validate_name",
]
