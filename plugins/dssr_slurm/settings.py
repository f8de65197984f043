"""The Slurm connector's settings, read once from the environment."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from dssr_core import ConfigError, ScratchLayout, Settings

DEFAULT_SCRATCH = "/jxe_scratch"
DEFAULT_MAPPING_FILE = "users_id_mapping_configuration.yaml"
#: the service user's private key (text, or ``SERVICE_KEY_VARIABLE + "_FILE"``: a file holding it)
SERVICE_KEY_VARIABLE = "JARVICE_SLURM_SSH_PKEY"


@dataclass(frozen=True)
class SlurmSettings:
    """Everything the connector reads from ``JARVICE_*`` variables (the key is kept as text, never shown)."""

    host: str
    port: int
    service_user: str
    #: the service user's private key as configured (PEM text or base64); None when unset
    service_key_text: str | None
    #: the variable that gave it: JARVICE_SLURM_SSH_PKEY, or JARVICE_SLURM_SSH_PKEY_FILE (a mounted file)
    service_key_setting: str
    #: why the key could not be read (its file unreadable, or both variables set); a local check
    #: reports it, beside the others, instead of it hiding every other fault (issue 21)
    service_key_problem: str | None
    known_hosts: str | None
    host_key: str | None
    #: where first-seen host keys are kept across restarts (trust on first use only)
    host_key_record: str | None
    scratch: str
    mapping_file: str
    interface: str
    status_ttl: float
    command_timeout: float
    kill_grace: float
    pvcls_roots: tuple[str, ...]
    keepalive: int

    def __repr__(self) -> str:
        return f"SlurmSettings(host={self.host!r}, port={self.port}, service_user={self.service_user!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> "SlurmSettings":
        host = settings.str("JARVICE_SLURM_CLUSTER_ADDR")
        if not host:
            raise ConfigError("JARVICE_SLURM_CLUSTER_ADDR is not set: give the address of the cluster's login node.")
        _, scratch = settings.first("JARVICE_BAREMETAL_SCRATCH_DIR", "JARVICE_JOB_SCRATCH_DIR")
        scratch = scratch or DEFAULT_SCRATCH
        if not posixpath.isabs(scratch):
            raise ConfigError(f"JARVICE_BAREMETAL_SCRATCH_DIR={scratch!r} is not an absolute path.")
        roots_raw = settings.str("JARVICE_PVCLS_ROOTS", "") or ""
        roots = []
        for item in roots_raw.replace(",", ":").split(":"):
            item = item.strip()
            if not item:
                continue
            if not posixpath.isabs(item):
                raise ConfigError(f"JARVICE_PVCLS_ROOTS: {item!r} is not an absolute path.")
            roots.append(posixpath.normpath(item))
        key_setting, key_text, key_problem = _service_key(settings)
        return cls(
            host=host,
            port=settings.int("JARVICE_SLURM_CLUSTER_PORT", 22, minimum=1, maximum=65535),
            service_user=settings.str("JARVICE_SLURM_SSH_USER", "jarvice") or "jarvice",
            service_key_text=key_text,
            service_key_setting=key_setting,
            service_key_problem=key_problem,
            known_hosts=settings.str("JARVICE_SLURM_SSH_KNOWN_HOSTS"),
            host_key=settings.str("JARVICE_SLURM_SSH_HOST_KEY"),
            host_key_record=_record_path(settings),
            scratch=posixpath.normpath(scratch),
            mapping_file=settings.str("JARVICE_USERS_ID_MAPPING_FILE", DEFAULT_MAPPING_FILE) or DEFAULT_MAPPING_FILE,
            interface=settings.choice("JARVICE_SLURM_INTERFACE", "cli", ("cli", "http")),
            status_ttl=settings.float("JARVICE_SLURM_STATUS_TTL", 2.0, minimum=0.0),
            command_timeout=settings.float("JARVICE_SLURM_COMMAND_TIMEOUT", 30.0, minimum=1.0),
            kill_grace=settings.float("JARVICE_SLURM_KILL_GRACE", 10.0, minimum=0.0),
            pvcls_roots=(posixpath.normpath(scratch), *roots),
            keepalive=settings.int("JARVICE_SLURM_SSH_KEEPALIVE", 15, minimum=1, maximum=3600),
        )

    @property
    def layout(self) -> ScratchLayout:
        """Where each user's jobs are under :attr:`scratch` (``<scratch>/users/<user>/jarvice_<name>``)."""
        return ScratchLayout(self.scratch)

    def user_scratch(self, user: str) -> str:
        return self.layout.user_scratch(user)

    def job_dir(self, user: str, slurm_name: str) -> str:
        return self.layout.job_dir(user, slurm_name)

    def output_file(self, user: str, slurm_name: str) -> str:
        return self.layout.output_file(user, slurm_name)


def _service_key(settings: Settings) -> tuple[str, str | None, str | None]:
    """(the variable that gives the service user's key, its text, why it cannot be read)."""
    try:
        setting, text = settings.secret_text(SERVICE_KEY_VARIABLE)
    except ConfigError as exc:
        return settings.first(SERVICE_KEY_VARIABLE + "_FILE", SERVICE_KEY_VARIABLE)[0], None, str(exc)
    return setting, text, None


def _record_path(settings: Settings) -> str | None:
    path = settings.str("JARVICE_SLURM_SSH_HOST_KEY_RECORD")
    if path and not os.path.isabs(path):
        raise ConfigError(f"JARVICE_SLURM_SSH_HOST_KEY_RECORD={path!r} is not an absolute path.")
    return path
