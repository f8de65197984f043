"""dssr_core: the jarvice-dssr library (job model, plugin contracts, the façade :class:`Downstream`).

Imports neither Flask nor any plugin; plugins are found through entry points.
``import dssr_core`` loads neither PyJWT nor paramiko either: the names that
need them (:data:`LAZY`) are imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from . import metrics
from .checks import Check, Contact, NodeProbe, failed, passed
from .config import DownstreamSettings, Settings, runs_host_commands
from .connector import Connector, Stream, split_by_state
from .downstream import Downstream
from .errors import BadRequest, ClusterError, ConfigError, DssrError, NotFound, PluginError
from .executor import NODE_VARIABLES, Executor, Launch, LaunchContext
from .formats import elapsed_seconds, expand_nodelist, format_seconds, normalize_elapsed
from .interactive import (
    MARKER_FILE,
    PROXY_LISTEN_VARIABLE,
    SERVICE_DIR,
    InteractiveSettings,
    JobsDomain,
    ServiceAccess,
    substitute,
)
from .job import (
    ExitStatus,
    FileEntry,
    Identity,
    JobInfo,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    Submission,
    UpstreamTemplate,
)
from .nodelaunch import NodeLaunch, batch_script, launch_wrapper
from .once import ONCE_TAG, NamedJob, OnceAttempt, OnceCommands, once_script, parse_once_output, submit_once
from .plugins import available_connectors, available_executors, load_connector, load_executor
from .scratch import JobFiles, ScratchLayout, write_at_start, write_job_files
from .sharing import Batcher, SharedSnapshot
from .shell import command, exports
from .upstream import fill_template, parse_template, redact_template
from .validate import (
    CLUSTER_USER_PATTERN,
    NAME_PATTERN,
    bounded,
    decode_base64_text,
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
    from .usermap import UserMapping, UserMappingFile, parse_user_mapping

#: public names whose module needs an optional dependency (PyJWT, paramiko): imported on first use
LAZY = {
    "TokenVerifier": ".identity",
    "JobProxy": ".proxy",
    "HostKeyPolicy": ".sshkeys",
    "Login": ".ssh",
    "Result": ".ssh",
    "SSHPool": ".ssh",
    "load_private_key": ".sshkeys",
    "UserMapping": ".usermap",
    "UserMappingFile": ".usermap",
    "parse_user_mapping": ".usermap",
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
    "available_connectors",
    "available_executors",
    "BadRequest",
    "batch_script",
    "Batcher",
    "bounded",
    "Check",
    "CLUSTER_USER_PATTERN",
    "ClusterError",
    "command",
    "ConfigError",
    "Connector",
    "Contact",
    "decode_base64_text",
    "Downstream",
    "DownstreamSettings",
    "DssrError",
    "elapsed_seconds",
    "Executor",
    "ExitStatus",
    "expand_nodelist",
    "exports",
    "failed",
    "FileEntry",
    "fill_template",
    "format_seconds",
    "HostKeyPolicy",
    "Identity",
    "InteractiveSettings",
    "is_name",
    "JobFiles",
    "JobInfo",
    "JobProxy",
    "JobRef",
    "JobsDomain",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Launch",
    "launch_wrapper",
    "LaunchContext",
    "load_connector",
    "load_executor",
    "load_private_key",
    "Login",
    "MARKER_FILE",
    "metrics",
    "NAME_PATTERN",
    "NamedJob",
    "NODE_VARIABLES",
    "NodeLaunch",
    "NodeProbe",
    "normalize_elapsed",
    "NotFound",
    "numeric_id",
    "ONCE_TAG",
    "OnceAttempt",
    "OnceCommands",
    "once_script",
    "parse_int",
    "parse_once_output",
    "parse_template",
    "parse_user_mapping",
    "passed",
    "PluginError",
    "PROXY_LISTEN_VARIABLE",
    "redact_template",
    "Result",
    "runs_host_commands",
    "ScratchLayout",
    "SERVICE_DIR",
    "ServiceAccess",
    "Settings",
    "SharedSnapshot",
    "shown",
    "split_by_state",
    "SSHPool",
    "Stream",
    "Submission",
    "submit_once",
    "substitute",
    "TokenVerifier",
    "UpstreamTemplate",
    "UserMapping",
    "UserMappingFile",
    "validate_jobid",
    "validate_name",
    "validate_nodes",
    "validate_number",
    "write_at_start",
    "write_job_files",
]
