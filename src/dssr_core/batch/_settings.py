"""What every batch connector reached over SSH reads from the environment, under its own prefix.

A connector's settings class derives from :class:`BatchSettings` and adds its
scheduler's own fields; :meth:`BatchSettings.common` reads the shared ones
(``<PREFIX>_CLUSTER_ADDR``, ``<PREFIX>_SSH_PKEY``, ``JARVICE_BAREMETAL_SCRATCH_DIR``...),
each bad value a :class:`~dssr_core.ConfigError` naming its variable.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from .._config import Settings
from .._errors import ConfigError
from ._scratch import ScratchLayout

DEFAULT_SCRATCH = "/jxe_scratch"
DEFAULT_MAPPING_FILE = "users_id_mapping_configuration.yaml"


@dataclass(frozen=True)
class BatchSettings:
    """The settings every batch connector shares (the key is kept as text, never shown)."""

    #: the connector's variables start with this (``JARVICE_SLURM``, ``JARVICE_GE``)
    prefix: str
    #: the login (submit) host and its SSH port
    host: str
    port: int
    #: the service user: lists, holds, releases and cancels every user's jobs
    service_user: str
    #: the service user's private key as configured (PEM text or base64); None when unset
    service_key_text: str | None
    #: the variable that gave it: ``<PREFIX>_SSH_PKEY``, or ``<PREFIX>_SSH_PKEY_FILE`` (a mounted file)
    service_key_setting: str
    #: why the key could not be read (its file unreadable, or both variables set): a local check reports
    #: it beside the others, instead of it hiding every other fault
    service_key_problem: str | None
    known_hosts: str | None
    host_key: str | None
    #: where first-seen host keys are kept across restarts (trust on first use only)
    host_key_record: str | None
    scratch: str
    mapping_file: str
    #: how long one queue snapshot serves every request (seconds)
    status_ttl: float
    command_timeout: float
    #: the folders ``/request/pvcls`` may list (the scratch first)
    pvcls_roots: tuple[str, ...]
    keepalive: int

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self.port}, service_user={self.service_user!r})"

    @staticmethod
    def common(settings: Settings, prefix: str, host_is: str) -> dict[str, Any]:
        """The shared fields read under ``prefix``, as keyword arguments of the settings class;
        ``host_is`` ends the message of a missing ``<PREFIX>_CLUSTER_ADDR`` ("the cluster's login node")."""
        host = settings.text(f"{prefix}_CLUSTER_ADDR")
        if not host:
            raise ConfigError(f"{prefix}_CLUSTER_ADDR is not set: give the address of {host_is}.")
        _, scratch = settings.first("JARVICE_BAREMETAL_SCRATCH_DIR", "JARVICE_JOB_SCRATCH_DIR")
        scratch = scratch or DEFAULT_SCRATCH
        if not posixpath.isabs(scratch):
            raise ConfigError(f"JARVICE_BAREMETAL_SCRATCH_DIR={scratch!r} is not an absolute path.")
        roots = []
        for item in (settings.text("JARVICE_PVCLS_ROOTS", "") or "").replace(",", ":").split(":"):
            item = item.strip()
            if item and not posixpath.isabs(item):
                raise ConfigError(f"JARVICE_PVCLS_ROOTS: {item!r} is not an absolute path.")
            if item:
                roots.append(posixpath.normpath(item))
        record = settings.text(f"{prefix}_SSH_HOST_KEY_RECORD")
        if record and not posixpath.isabs(record):
            raise ConfigError(f"{prefix}_SSH_HOST_KEY_RECORD={record!r} is not an absolute path.")
        key_problem = None
        try:
            key_setting, key_text = settings.secret_text(f"{prefix}_SSH_PKEY")
        except ConfigError as exc:
            key_setting, key_text, key_problem = f"{prefix}_SSH_PKEY_FILE", None, str(exc)
        return {
            "prefix": prefix,
            "host": host,
            "port": settings.integer(f"{prefix}_CLUSTER_PORT", 22, minimum=1, maximum=65535),
            "service_user": settings.text(f"{prefix}_SSH_USER", "jarvice") or "jarvice",
            "service_key_text": key_text,
            "service_key_setting": key_setting,
            "service_key_problem": key_problem,
            "known_hosts": settings.text(f"{prefix}_SSH_KNOWN_HOSTS"),
            "host_key": settings.text(f"{prefix}_SSH_HOST_KEY"),
            "host_key_record": record,
            "scratch": posixpath.normpath(scratch),
            "mapping_file": settings.text("JARVICE_USERS_ID_MAPPING_FILE", DEFAULT_MAPPING_FILE)
            or DEFAULT_MAPPING_FILE,
            "status_ttl": settings.number(f"{prefix}_STATUS_TTL", 2.0, minimum=0.0),
            "command_timeout": settings.number(f"{prefix}_COMMAND_TIMEOUT", 30.0, minimum=1.0),
            "pvcls_roots": (posixpath.normpath(scratch), *roots),
            "keepalive": settings.integer(f"{prefix}_SSH_KEEPALIVE", 15, minimum=1, maximum=3600),
        }

    def variable(self, suffix: str) -> str:
        """The name of this connector's variable ``<PREFIX>_<suffix>`` (for messages)."""
        return f"{self.prefix}_{suffix}"

    @property
    def layout(self) -> ScratchLayout:
        """Where each user's jobs are under :attr:`scratch` (``<scratch>/users/<user>/jarvice_<name>``)."""
        return ScratchLayout(self.scratch)

    def user_scratch(self, user: str) -> str:
        return self.layout.user_scratch(user)

    def job_dir(self, user: str, job_name: str) -> str:
        return self.layout.job_dir(user, job_name)

    def output_file(self, user: str, job_name: str) -> str:
        return self.layout.output_file(user, job_name)
