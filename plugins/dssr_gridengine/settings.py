"""The Grid Engine connector's settings, read once from the environment (``JARVICE_GE_*``)."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

from dssr_core import ConfigError, ScratchLayout, Settings

DEFAULT_SCRATCH = "/jxe_scratch"
DEFAULT_MAPPING_FILE = "users_id_mapping_configuration.yaml"
#: the accounting file as the login node's environment names it
DEFAULT_ACCOUNTING = "$SGE_ROOT/$SGE_CELL/common/accounting"
_WORD = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class GESettings:
    """Everything the connector reads from ``JARVICE_*`` variables (the key is kept as text, never shown)."""

    host: str
    port: int
    service_user: str
    service_key_text: str | None
    service_key_setting: str
    known_hosts: str | None
    host_key: str | None
    host_key_record: str | None
    scratch: str
    mapping_file: str
    #: the parallel environment every job runs in (allocation_rule 1, control_slaves TRUE)
    pe: str
    #: the queue jobs go to when the job names no partition (None: Grid Engine chooses)
    queue: str | None
    #: the complex that counts GPUs per host (None: GPU requests are refused)
    gpu_resource: str | None
    accounting_file: str
    status_ttl: float
    command_timeout: float
    pvcls_roots: tuple[str, ...]
    keepalive: int

    def __repr__(self) -> str:
        return f"GESettings(host={self.host!r}, port={self.port}, service_user={self.service_user!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> "GESettings":
        host = settings.str("JARVICE_GE_CLUSTER_ADDR")
        if not host:
            raise ConfigError("JARVICE_GE_CLUSTER_ADDR is not set: give the address of a Grid Engine submit host.")
        _, scratch = settings.first("JARVICE_BAREMETAL_SCRATCH_DIR", "JARVICE_JOB_SCRATCH_DIR")
        scratch = scratch or DEFAULT_SCRATCH
        if not posixpath.isabs(scratch):
            raise ConfigError(f"JARVICE_BAREMETAL_SCRATCH_DIR={scratch!r} is not an absolute path.")
        roots = []
        for item in (settings.str("JARVICE_PVCLS_ROOTS", "") or "").replace(",", ":").split(":"):
            if item.strip():
                if not posixpath.isabs(item.strip()):
                    raise ConfigError(f"JARVICE_PVCLS_ROOTS: {item.strip()!r} is not an absolute path.")
                roots.append(posixpath.normpath(item.strip()))
        words = {
            "JARVICE_GE_PE": settings.str("JARVICE_GE_PE", "dssr"),
            "JARVICE_GE_QUEUE": settings.str("JARVICE_GE_QUEUE"),
            "JARVICE_GE_GPU_RESOURCE": settings.str("JARVICE_GE_GPU_RESOURCE"),
        }
        for name, value in words.items():
            if value is not None and not _WORD.match(value):
                raise ConfigError(f"{name}={value!r} is not a Grid Engine object name (letters, digits, _.@-).")
        accounting = settings.str("JARVICE_GE_ACCOUNTING_FILE", DEFAULT_ACCOUNTING) or DEFAULT_ACCOUNTING
        if accounting != DEFAULT_ACCOUNTING and not posixpath.isabs(accounting):
            raise ConfigError(f"JARVICE_GE_ACCOUNTING_FILE={accounting!r} is not an absolute path.")
        record = settings.str("JARVICE_GE_SSH_HOST_KEY_RECORD")
        if record and not os.path.isabs(record):
            raise ConfigError(f"JARVICE_GE_SSH_HOST_KEY_RECORD={record!r} is not an absolute path.")
        key_setting, key_text = settings.secret_text("JARVICE_GE_SSH_PKEY")
        return cls(
            host=host,
            port=settings.int("JARVICE_GE_CLUSTER_PORT", 22, minimum=1, maximum=65535),
            service_user=settings.str("JARVICE_GE_SSH_USER", "jarvice") or "jarvice",
            service_key_text=key_text,
            service_key_setting=key_setting,
            known_hosts=settings.str("JARVICE_GE_SSH_KNOWN_HOSTS"),
            host_key=settings.str("JARVICE_GE_SSH_HOST_KEY"),
            host_key_record=record,
            scratch=posixpath.normpath(scratch),
            mapping_file=settings.str("JARVICE_USERS_ID_MAPPING_FILE", DEFAULT_MAPPING_FILE) or DEFAULT_MAPPING_FILE,
            pe=words["JARVICE_GE_PE"] or "dssr",
            queue=words["JARVICE_GE_QUEUE"],
            gpu_resource=words["JARVICE_GE_GPU_RESOURCE"],
            accounting_file=accounting,
            status_ttl=settings.float("JARVICE_GE_STATUS_TTL", 2.0, minimum=0.0),
            command_timeout=settings.float("JARVICE_GE_COMMAND_TIMEOUT", 30.0, minimum=1.0),
            pvcls_roots=(posixpath.normpath(scratch), *roots),
            keepalive=settings.int("JARVICE_GE_SSH_KEEPALIVE", 15, minimum=1, maximum=3600),
        )

    @property
    def layout(self) -> ScratchLayout:
        """Where each user's jobs are: ``<scratch>/users/<user>/jarvice_<name>`` (the Slurm connector's layout)."""
        return ScratchLayout(self.scratch)
