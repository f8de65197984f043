"""The executor's settings, read once from ``JARVICE_*`` variables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from dssr_core import ConfigError, Settings

_PROXY = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+\Z")
_NO_PROXY = re.compile(r"^[A-Za-z0-9.,:*/_\[\]-]+\Z")
_REGISTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?\Z")
_REPO_BASE = re.compile(r"^[a-z0-9][a-z0-9._/-]*[a-z0-9]\Z|^[a-z0-9]\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*\Z")
_BINARY = re.compile(r"^[A-Za-z0-9._/+-]+\Z")


@dataclass(frozen=True)
class SingularitySettings:
    overlay_mb: int = 600
    verbose: bool = False
    tmpdir: str = "/tmp"
    #: empty: ``apptainer`` if on the node's PATH, else ``singularity`` (decided on the node)
    binary: str = ""
    system_registry: str | None = None
    system_repo_base: str | None = None
    images_tag: str = "latest"
    #: credentials for the system registry (init image), decoded from base64
    system_username: str = field(default="", repr=False)
    system_password: str = field(default="", repr=False)
    local_registry: str | None = None
    local_repo_base: str | None = None
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""
    #: ``auths`` of ``JARVICE_SINGULARITY_REGISTRY_AUTHS`` (a Docker config.json); secret
    registry_auths: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: registries (``host[:port]``, lower case) pulled from over plain HTTP: ``JARVICE_SINGULARITY_INSECURE_REGISTRIES``
    insecure_registries: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "SingularitySettings":
        local_registry = _matching(settings, "JARVICE_LOCAL_REGISTRY", _REGISTRY, "a registry host[:port]")
        local_repo_base = _matching(settings, "JARVICE_LOCAL_REPO_BASE", _REPO_BASE, "a repository path")
        if local_registry and not local_repo_base:
            raise ConfigError("JARVICE_LOCAL_REPO_BASE is not set: it is required when JARVICE_LOCAL_REGISTRY is set.")
        tmpdir = _matching(settings, "JARVICE_SINGULARITY_TMPDIR", _PATH, "an absolute path") or "/tmp"
        return cls(
            overlay_mb=settings.integer("JARVICE_SINGULARITY_OVERLAY_SIZE", 600, minimum=0, maximum=10_000_000),
            verbose=settings.flag("JARVICE_SINGULARITY_VERBOSE", False),
            tmpdir=tmpdir,
            binary=_matching(settings, "JARVICE_SINGULARITY_BINARY", _BINARY, "a command name or path") or "",
            system_registry=_matching(settings, "JARVICE_SYSTEM_REGISTRY", _REGISTRY, "a registry host[:port]"),
            system_repo_base=_matching(settings, "JARVICE_SYSTEM_REPO_BASE", _REPO_BASE, "a repository path"),
            images_tag=_matching(settings, "JARVICE_IMAGES_TAG", _TAG, "an image tag") or "latest",
            system_username=settings.base64_text("JARVICE_DOCKER_USERNAME"),
            system_password=settings.base64_text("JARVICE_DOCKER_PASSWORD"),
            local_registry=local_registry,
            local_repo_base=local_repo_base,
            http_proxy=_matching(settings, "JARVICE_BAREMETAL_HTTP_PROXY", _PROXY, "an http(s):// URL") or "",
            https_proxy=_matching(settings, "JARVICE_BAREMETAL_HTTPS_PROXY", _PROXY, "an http(s):// URL") or "",
            no_proxy=_matching(settings, "JARVICE_BAREMETAL_NO_PROXY", _NO_PROXY, "a comma-separated host list") or "",
            registry_auths=_auths_file(settings.text("JARVICE_SINGULARITY_REGISTRY_AUTHS")),
            insecure_registries=_registries(settings, "JARVICE_SINGULARITY_INSECURE_REGISTRIES"),
        )

    def insecure(self, registry: str) -> bool:
        """Whether images of ``registry`` are pulled over plain HTTP (the site listed it as insecure)."""
        return registry.lower() in self.insecure_registries


def _matching(settings: Settings, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = settings.text(name)
    if value is not None and not pattern.match(value):
        raise ConfigError(f"{name}={value!r} is not {what}.")
    return value


def _registries(settings: Settings, name: str) -> tuple[str, ...]:
    """A comma-separated list of ``host[:port]``; each entry must be one (no scheme, no path, no wildcard)."""
    value = settings.text(name) or ""
    entries = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    for entry in entries:
        if not _REGISTRY.match(entry):
            raise ConfigError(f"{name}: {entry!r} is not a registry host[:port] (no scheme, path or wildcard).")
    return entries


def _auths_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"JARVICE_SINGULARITY_REGISTRY_AUTHS={path!r} cannot be read ({exc.strerror}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"JARVICE_SINGULARITY_REGISTRY_AUTHS={path!r} is not a Docker config.json.") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        raise ConfigError(f"JARVICE_SINGULARITY_REGISTRY_AUTHS={path!r} has no 'auths' object.")
    return auths
