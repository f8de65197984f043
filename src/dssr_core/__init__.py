"""dssr_core: the jarvice-dssr library (job model, plugin contracts, legacy API logic).

Imports neither Flask nor any plugin; plugins are found through entry points.
``import dssr_core`` loads neither PyJWT nor paramiko either: the names that
need them (:data:`LAZY`) are imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from . import metrics
from .checks import Check, Contact, NodeProbe
from .config import ServerSettings, Settings
from .connector import Connector, Stream, split_by_state
from .downstream import Downstream
from .errors import BadRequest, ClusterError, ConfigError, DssrError, NotFound, PluginError
from .executor import NODE_VARIABLES, Executor, Launch, LaunchContext
from .formats import elapsed_seconds, expand_nodelist, format_seconds, normalize_elapsed
from .interactive import InteractiveSettings, JobsDomain, ServiceAccess
from .job import (
    NAME_PATTERN,
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
from .interactive import MARKER_FILE, PROXY_LISTEN_VARIABLE, SERVICE_DIR, ServiceAccess, substitute
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

if TYPE_CHECKING:
    from .identity import TokenVerifier
    from .proxy import JobProxy
    from .ssh import HostKeyPolicy, Login, Result, SSHPool, load_private_key

#: public names whose module needs an optional dependency (PyJWT, paramiko): imported on first use
LAZY = {
    "TokenVerifier": ".identity",
    "JobProxy": ".proxy",
    "HostKeyPolicy": ".ssh",
    "Login": ".ssh",
    "Result": ".ssh",
    "SSHPool": ".ssh",
    "load_private_key": ".ssh",
}


def __getattr__(name: str) -> Any:
    module = LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dssr_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "JobProxy",
    "substitute",
    "Stream",
    "ServiceAccess",
    "SERVICE_DIR",
    "PROXY_LISTEN_VARIABLE",
    "MARKER_FILE",
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
    "HostKeyPolicy",
    "Identity",
    "InteractiveSettings",
    "JobRef",
    "JobSpec",
    "JobState",
    "JobStatus",
    "JobsDomain",
    "Launch",
    "LaunchContext",
    "Login",
    "NAME_PATTERN",
    "NODE_VARIABLES",
    "NamedJob",
    "NodeProbe",
    "NotFound",
    "OnceAttempt",
    "PluginError",
    "Result",
    "SSHPool",
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
    "load_private_key",
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
