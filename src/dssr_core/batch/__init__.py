"""dssr_core.batch: what a connector for a batch scheduler reached over SSH is built from.

The Slurm and the Grid Engine connectors are made of these parts and of their
scheduler's own commands; a connector for another batch scheduler is too (see
docs/plugins.md, whose worked example is the Grid Engine connector):

* submit-once (:func:`submit_once`, :func:`once_script`): one job per name across
  replicas, without a job database;
* the shared queue snapshot and accounting in batches (:class:`SharedSnapshot`,
  :class:`Batcher`);
* the scratch layout and job files (:class:`ScratchLayout`, :func:`write_job_files`),
  the per-node launch (:class:`NodeLaunch`, :func:`batch_script`);
* user mapping (:class:`UserMappingFile`), the SSH pool and host keys (:class:`SSHPool`,
  :class:`HostKeyPolicy`), scripts run from standard input (:func:`script_command`), the
  service user's shell and folder listings;
* the scheduler-neutral parsing helpers (node lists, elapsed times, job ids);
* :class:`BatchConnector`: the connector itself, whose scheduler-specific part is a
  few hooks (list, account, submit held, cancel, release, show, state mapping).

``import dssr_core.batch`` loads neither Flask nor paramiko: paramiko is
imported with the first SSH connection (or the first key read).
"""

from .._formats import elapsed_seconds, expand_nodelist, format_seconds, normalize_elapsed
from .._validate import CLUSTER_USER_PATTERN, NAME_PATTERN, numeric_id
from ._connector import EXIT_TAIL, BatchConnector
from ._jobs import PREFIX, EndedJob, JobPlan, QueuedJob, QueueIndex
from ._listing import FolderListing
from ._nodelaunch import NodeLaunch, batch_script, launch_wrapper
from ._once import ONCE_TAG, NamedJob, OnceAttempt, OnceCommands, once_script, parse_once_output, submit_once
from ._scratch import JobFiles, ScratchLayout, write_at_start, write_job_files
from ._settings import BatchSettings
from ._sharing import Batcher, SharedSnapshot
from ._shell import ServiceShell, build_pool
from ._ssh import Login, Result, SSHPool, script_command
from ._sshkeys import HostKeyPolicy, load_private_key
from ._usermap import UserMapping, UserMappingFile, parse_user_mapping

__all__ = [
    "BatchConnector",
    "BatchSettings",
    "build_pool",
    "EndedJob",
    "EXIT_TAIL",
    "FolderListing",
    "JobPlan",
    "PREFIX",
    "QueuedJob",
    "QueueIndex",
    "ServiceShell",
    "Batcher",
    "batch_script",
    "CLUSTER_USER_PATTERN",
    "elapsed_seconds",
    "expand_nodelist",
    "format_seconds",
    "HostKeyPolicy",
    "JobFiles",
    "launch_wrapper",
    "load_private_key",
    "Login",
    "NAME_PATTERN",
    "NamedJob",
    "NodeLaunch",
    "normalize_elapsed",
    "numeric_id",
    "ONCE_TAG",
    "OnceAttempt",
    "OnceCommands",
    "once_script",
    "parse_once_output",
    "parse_user_mapping",
    "Result",
    "ScratchLayout",
    "script_command",
    "SharedSnapshot",
    "SSHPool",
    "submit_once",
    "UserMapping",
    "UserMappingFile",
    "write_at_start",
    "write_job_files",
]
