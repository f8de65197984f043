"""Image references: validation, the registry an image belongs to, and its credentials."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from dssr_core import BadRequest, shown

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = r"(?::[0-9]{1,5})"
#: a registry: has a dot or a port, or is localhost (else the first part is a path component)
_DOMAIN = rf"(?:localhost{_PORT}?|{_LABEL}(?:\.{_LABEL})+{_PORT}?|{_LABEL}{_PORT})"
#: ``[docker://][registry/]path[:tag][@sha256:digest]``, Docker's reference grammar
IMAGE_PATTERN = re.compile(
    rf"^(?:docker://)?(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?\Z"
)
DOCKER_HUB = "index.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
KNOWN_ARCHES = ("amd64", "arm64", "ppc64le", "s390x", "riscv64", "386", "arm")


def validate_image(image: object) -> str:
    """The reference without ``docker://``; :class:`BadRequest` when it is not a Docker image reference."""
    if not isinstance(image, str) or len(image) > 512 or not IMAGE_PATTERN.match(image):
        raise BadRequest(
            f"Image {shown(image)} is not a container image reference "
            "(expected [docker://][registry/]name[:tag][@sha256:digest])."
        )
    return image[len("docker://") :] if image.startswith("docker://") else image


def registry_of(reference: str) -> str:
    """The registry serving ``reference`` (``docker.io/...`` with two path parts or fewer: Docker Hub)."""
    parts = reference.split("/")
    first = parts[0]
    has_registry = len(parts) > 1 and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        return DOCKER_HUB
    if first.lower() in _HUB_ALIASES:
        return DOCKER_HUB if len(parts) - 1 <= 2 else first.lower()
    return first.lower()


def server_of(url: str) -> str:
    """The registry host of a credential's server (``https://index.docker.io/v1/`` -> ``index.docker.io``)."""
    host = url.split("://", 1)[-1].split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


@dataclass(frozen=True)
class Credentials:
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.password)


NO_CREDENTIALS = Credentials()


def from_auths(auths: Mapping[str, Any], registry: str) -> Credentials:
    """Credentials for ``registry`` out of a Docker config.json ``auths`` map (none when absent or malformed)."""
    for server, entry in auths.items():
        if server_of(str(server)) != registry or not isinstance(entry, Mapping):
            continue
        if isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                continue
            return Credentials(user, password)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
    return NO_CREDENTIALS


def app_credentials(reference: str, docker_secret: Mapping[str, str], auths: Mapping[str, Any]) -> Credentials:
    """The job's own Docker secret when its server serves the image, else the ``auths`` entry, else none."""
    registry = registry_of(reference)
    if docker_secret and server_of(docker_secret.get("server", "")) == registry:
        return Credentials(docker_secret.get("username", ""), docker_secret.get("password", ""))
    return from_auths(auths, registry)


def swap_arch(tag: str, arch: str) -> str:
    """``jarvice-3.24.5-amd64`` -> ``jarvice-3.24.5-arm64`` for an arm64 job; tags without an arch suffix unchanged."""
    for known in KNOWN_ARCHES:
        suffix = "-" + known
        if tag.endswith(suffix) and len(tag) > len(suffix):
            return tag[: -len(known)] + arch
    return tag


def sif_name(reference: str) -> str:
    """A file name for the image in a cache folder: readable, and unique per reference."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", reference)[:80]
    return f"{readable}-{hashlib.sha256(reference.encode()).hexdigest()[:12]}.sif"
