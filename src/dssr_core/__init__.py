"""dssr_core: the jarvice-dssr library (job model, plugin contracts, the façade :class:`Downstream`).

The contracts (:class:`Connector`, :class:`Executor`), the job model, the errors and the
façade.  The toolkit a batch-scheduler connector is built from is :mod:`dssr_core.batch`;
the contract suite a plugin runs is :mod:`dssr_core.testing`.  Every other module is
private (``_name.py``): each public name has one address, its package.

Imports neither Flask nor any plugin; plugins are found through entry points.
``import dssr_core`` loads neither PyJWT nor paramiko either: the names that
need them (:data:`LAZY`) are imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from . import metrics
from ._checks import Check, Contact, NodeProbe, failed, passed
from ._config import (
    CONNECTOR_VARIABLE,
    EXECUTOR_VARIABLE,
    DownstreamSettings,
    Settings,
    choose_plugins,
    runs_host_commands,
)
from ._connector import Connector, Stream
from ._downstream import Downstream
from ._errors import (
    BadRequest,
    Busy,
    ClusterError,
    ConfigError,
    Conflict,
    DssrError,
    Forbidden,
    InUse,
    NotFound,
    NotSupported,
    PluginError,
    Unauthorized,
    Unprocessable,
)
from ._executor import Executor, Launch, LaunchContext
from ._interactive import PROXY_LISTEN_VARIABLE, SERVICE_DIR, InteractiveSettings, ServiceAccess, substitute
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
    NodeInfo,
    OutputChunk,
    PartitionInfo,
    Submission,
    UpstreamTemplate,
)
from ._plugins import available_connectors, available_executors, load_connector, load_executor
from ._shell import command, exports
from ._upstream import fill_template, redact_template
from ._validate import shown

if TYPE_CHECKING:
    from ._identity import TokenVerifier
    from ._proxy import JobProxy

#: public names whose module needs an optional dependency (PyJWT, paramiko): imported on first use
LAZY = {
    "TokenVerifier": "._identity",
    "JobProxy": "._proxy",
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
    "__version__",
    "available_connectors",
    "available_executors",
    "BadRequest",
    "Busy",
    "Check",
    "choose_plugins",
    "ClusterError",
    "ClusterInfo",
    "command",
    "ConfigError",
    "Conflict",
    "Connector",
    "CONNECTOR_VARIABLE",
    "Contact",
    "Downstream",
    "DownstreamSettings",
    "DssrError",
    "Executor",
    "EXECUTOR_VARIABLE",
    "ExitStatus",
    "exports",
    "failed",
    "FileEntry",
    "fill_template",
    "Forbidden",
    "Identity",
    "InteractiveSettings",
    "InUse",
    "JobInfo",
    "JobProxy",
    "JobRef",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Launch",
    "LaunchContext",
    "load_connector",
    "load_executor",
    "metrics",
    "NodeInfo",
    "NodeProbe",
    "NotFound",
    "NotSupported",
    "OutputChunk",
    "PartitionInfo",
    "passed",
    "PluginError",
    "PROXY_LISTEN_VARIABLE",
    "redact_template",
    "runs_host_commands",
    "SERVICE_DIR",
    "ServiceAccess",
    "Settings",
    "shown",
    "Stream",
    "Submission",
    "substitute",
    "TokenVerifier",
    "Unauthorized",
    "Unprocessable",
    "UpstreamTemplate",
]
