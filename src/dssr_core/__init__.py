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
from .interactive import InteractiveSettings, JobsDomain, ServiceAccess
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
)
from .once import NamedJob, OnceAttempt, submit_once
from .plugins import available_connectors, available_executors, load_connector, load_executor
from .shell import command, exports
from .upstream import fill_template, parse_submission, parse_template, redact_template
from .validate import (
    bounded,
    is_name,
    numeric_id,
    parse_int,
    shown,
    validate_jobid,
    validate_name,
    validate_nodes,
    validate_number,
)

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
    "InteractiveSettings",
    "JobRef",
    "JobSpec",
    "JobState",
    "JobStatus",
    "JobsDomain",
    "Launch",
    "LaunchContext",
    "NODE_VARIABLES",
    "NamedJob",
    "NodeProbe",
    "NotFound",
    "OnceAttempt",
    "PluginError",
    "ServerSettings",
    "ServiceAccess",
    "Settings",
    "Submission",
    "TokenVerifier",
    "UpstreamTemplate",
    "available_connectors",
    "available_executors",
    "bounded",
    "command",
    "elapsed_seconds",
    "expand_nodelist",
    "exports",
    "fill_template",
    "format_seconds",
    "is_name",
    "load_connector",
    "load_executor",
    "metrics",
    "normalize_elapsed",
    "numeric_id",
    "parse_int",
    "parse_submission",
    "parse_template",
    "redact_template",
    "shown",
    "split_by_state",
    "submit_once",
    "validate_jobid",
    "validate_name",
    "validate_nodes",
    "validate_number",
]
