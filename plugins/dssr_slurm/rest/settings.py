"""slurmrestd settings (``JARVICE_SLURMRESTD_*``), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dssr_core import ConfigError, Settings

from .versions import SUPPORTED_VERSIONS

DEFAULT_PORT = 6820
DEFAULT_TOKEN_LIFESPAN = 1800


@dataclass(frozen=True)
class RestSettings:
    """Where slurmrestd is and how the service account authenticates (token kept out of the repr)."""

    scheme: str
    host: str
    port: int
    #: a version of :data:`SUPPORTED_VERSIONS`, or ``auto``
    api_version: str
    via_ssh: bool
    timeout: float
    token: str | None = field(default=None, repr=False)
    token_command: str | None = field(default=None, repr=False)
    token_lifespan: int = DEFAULT_TOKEN_LIFESPAN
    #: the service account's Slurm user name (default: the token's ``sun`` claim)
    user: str | None = None
    #: seconds a reading of the cluster's nodes and partitions serves (the queue snapshot's, JARVICE_SLURM_STATUS_TTL)
    shape_ttl: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RestSettings":
        addr = settings.text("JARVICE_SLURMRESTD_ADDR")
        if not addr:
            raise ConfigError(
                "JARVICE_SLURMRESTD_ADDR is not set: JARVICE_SLURM_INTERFACE=http needs slurmrestd's address "
                "with its scheme, e.g. http://mg1."
            )
        parts = urlsplit(addr if "://" in addr else "")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"JARVICE_SLURMRESTD_ADDR={addr!r} is not an address with a scheme: use e.g. http://mg1.")
        try:
            url_port = parts.port
        except ValueError:
            raise ConfigError(f"JARVICE_SLURMRESTD_ADDR={addr!r} has a bad port.") from None
        port = settings.integer("JARVICE_SLURMRESTD_PORT", url_port or DEFAULT_PORT, minimum=1, maximum=65535)
        version = settings.choice("JARVICE_SLURMRESTD_API_VERSION", "auto", ("auto", *SUPPORTED_VERSIONS))
        via_ssh = settings.flag("JARVICE_SLURMRESTD_VIA_SSH", True)
        if via_ssh and parts.scheme == "https":
            raise ConfigError(
                "JARVICE_SLURMRESTD_ADDR uses https while JARVICE_SLURMRESTD_VIA_SSH=true: the SSH channel "
                "already encrypts; use http:// or set JARVICE_SLURMRESTD_VIA_SSH=false."
            )
        token = settings.text("JARVICE_SLURMRESTD_TOKEN")
        token_command = settings.text("JARVICE_SLURMRESTD_TOKEN_COMMAND")
        if token and token_command:
            raise ConfigError("Set JARVICE_SLURMRESTD_TOKEN or JARVICE_SLURMRESTD_TOKEN_COMMAND, not both.")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            api_version=version,
            via_ssh=via_ssh,
            timeout=settings.number("JARVICE_SLURM_COMMAND_TIMEOUT", 30.0, minimum=1.0),
            token=token,
            token_command=token_command,
            token_lifespan=settings.integer(
                "JARVICE_SLURMRESTD_TOKEN_LIFESPAN", DEFAULT_TOKEN_LIFESPAN, minimum=120, maximum=86400 * 7
            ),
            user=settings.text("JARVICE_SLURMRESTD_USER"),
            shape_ttl=settings.number("JARVICE_SLURM_STATUS_TTL", 2.0, minimum=0.0),
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"
