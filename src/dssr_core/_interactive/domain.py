"""The jobs' public address: ``JARVICE_JOBS_DOMAIN``'s grammar, and the label that names a job in it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import ConfigError

JOBS_DOMAIN_VARIABLE = "JARVICE_JOBS_DOMAIN"


#: characters of the label's token (base32: 5 bits each, 100 bits in all)
LABEL_TOKEN_LENGTH = 20


LABEL_PATTERN = re.compile(r"^[0-9]{1,19}-[a-z2-7]{%d}$" % LABEL_TOKEN_LENGTH)


_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


_DOMAIN = re.compile(r"^(?:(?P<scheme>https?)://)?(?P<host>[^/:]+)(?::(?P<port>[0-9]{1,5}))?(?P<path>/.*)?$")


_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*\$$")


@dataclass(frozen=True)
class JobsDomain:
    """``JARVICE_JOBS_DOMAIN``, parsed."""

    host: str
    scheme: str = "https"
    port: int | None = None
    #: path-based routing: the path with ``$`` where the label goes (``/job$``); None: host-based
    path: str | None = None

    @classmethod
    def parse(cls, text: str, variable: str = JOBS_DOMAIN_VARIABLE) -> "JobsDomain":
        """Read the Helm chart's grammar; a bad value is a :class:`ConfigError` naming ``variable``."""
        value = text.strip()
        match = _DOMAIN.match(value)
        example = "use e.g. jobs.example.org (host-based) or portal.example.org/job$ (path-based)"
        if not match:
            raise ConfigError(f"{variable}={text!r} is not a domain: {example}.")
        host, path = match["host"], match["path"]
        if host.lower() == "lookup":
            raise ConfigError(
                f"{variable}={text!r}: 'lookup' (ask Kubernetes for the ingress address) does not apply here: "
                "give the public host name of the proxy."
            )
        if path is None and "$" in value:
            raise ConfigError(f"{variable}={text!r}: '$' belongs in a path (e.g. portal.example.org/job$).")
        if not _HOST.match(host):
            raise ConfigError(f"{variable}={text!r}: {host!r} is not a host name; {example}.")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"{variable}={text!r}: port {port} is out of range (1-65535).")
        if path is not None and not _PATH.match(path):
            raise ConfigError(
                f"{variable}={text!r}: a path-based domain needs a path ending in '$' (the job's place), "
                "of letters, digits and ./_~- (e.g. portal.example.org/job$)."
            )
        return cls(host=host.lower(), scheme=match["scheme"] or "https", port=port, path=path)

    @property
    def authority(self) -> str:
        """``host`` or ``host:port`` as it appears in URLs."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def public_addr(self, label: str) -> str:
        """What ``%PUBLICADDR%`` becomes: ``<label>.host[:port]`` or ``host[:port]/prefix<label>``."""
        if self.path is None:
            return f"{label}.{self.authority}"
        return self.authority + self.path.replace("$", label)

    def ingress_path(self, label: str) -> str | None:
        """``JARVICE_INGRESSPATH`` (path-based only): the job's path without its leading slash."""
        return None if self.path is None else self.path.replace("$", label).lstrip("/")

    def base_url(self, label: str) -> str:
        """What ``%BASEURL%`` becomes: the path the app is served under, ``/`` or ``/job<label>/``."""
        return "/" if self.path is None else self.path.replace("$", label) + "/"

    def origin(self, label: str) -> str:
        """The job's root URL without its trailing slash: ``https://<public addr>``."""
        return f"{self.scheme}://{self.public_addr(label)}"

    def describe(self) -> str:
        kind = "path-based" if self.path is not None else "host-based"
        return f"{self.scheme}://{self.public_addr('<label>')} ({kind})"
