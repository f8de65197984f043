"""The interactive jobs' settings, read once from the environment."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from .._config import Settings
from .._errors import ConfigError
from .access import ServiceAccess
from .domain import JOBS_DOMAIN_VARIABLE, LABEL_PATTERN, LABEL_TOKEN_LENGTH, JobsDomain
from .secrets import _ALPHABET, _BASE32, PASSWORD_LENGTH, RANDOM_LENGTHS, _token
from .templates import template_port

KEY_VARIABLE = "JARVICE_DSSR_INTERACTIVE_KEY"


SERVICE_PORT_VARIABLE = "JARVICE_SERVICE_PORT"


PROXY_LISTEN_VARIABLE = "JARVICE_DSSR_PROXY_LISTEN"


IDLE_TIMEOUT_VARIABLE = "JARVICE_DSSR_PROXY_IDLE_TIMEOUT"


APP_PORTS_VARIABLE = "JARVICE_DSSR_APP_PORTS"


#: the port jarvice-desktop's noVNC listens on when nothing else is said (tools/bin/vncstart.sh)
DEFAULT_SERVICE_PORT = 5902


DEFAULT_PROXY_LISTEN = "127.0.0.1:8081"


DEFAULT_IDLE_TIMEOUT = 3600.0


#: ports a URL template may name (an unprivileged app can listen on none below 1024)
DEFAULT_APP_PORTS = "1024-65535"


#: the shortest key accepted (characters)
MIN_KEY_LENGTH = 32


def parse_ports(text: str, variable: str = APP_PORTS_VARIABLE) -> tuple[tuple[int, int], ...]:
    """``5902,8888,10000-10100`` -> ((5902, 5902), (8888, 8888), (10000, 10100)); a bad value names ``variable``."""
    ranges = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([0-9]{1,5})\s*(?:-\s*([0-9]{1,5})\s*)?", part)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
        if not 1 <= low <= high <= 65535:
            raise ConfigError(
                f"{variable}={text!r}: {part.strip()!r} is not a port or a range of ports (1-65535), "
                f"e.g. 5902,8888 or {DEFAULT_APP_PORTS}."
            )
        ranges.append((low, high))
    return tuple(ranges)


@dataclass(frozen=True)
class InteractiveSettings:
    """The settings of interactive jobs and of the proxy (``from_settings`` reads them once)."""

    domain: JobsDomain | None
    key: bytes = field(repr=False, default=b"")
    service_port: int = DEFAULT_SERVICE_PORT
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 8081
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    #: ports (inclusive ranges) the proxy may reach when a URL template names one; the service port always
    app_ports: tuple[tuple[int, int], ...] = ((1024, 65535),)

    @classmethod
    def from_settings(cls, settings: Settings) -> "InteractiveSettings":
        raw_domain = settings.text(JOBS_DOMAIN_VARIABLE)
        domain = JobsDomain.parse(raw_domain) if raw_domain else None
        key = settings.text(KEY_VARIABLE) or ""
        if domain is not None and len(key) < MIN_KEY_LENGTH:
            state = "is not set" if not key else f"is shorter than {MIN_KEY_LENGTH} characters"
            raise ConfigError(
                f"{KEY_VARIABLE} {state}: interactive jobs ({JOBS_DOMAIN_VARIABLE} is set) need a secret of at "
                f"least {MIN_KEY_LENGTH} characters, the same on every replica (e.g. openssl rand -hex 32)."
            )
        host, port = parse_listen(settings.text(PROXY_LISTEN_VARIABLE, DEFAULT_PROXY_LISTEN) or DEFAULT_PROXY_LISTEN)
        return cls(
            domain=domain,
            key=key.encode(),
            service_port=settings.integer(SERVICE_PORT_VARIABLE, DEFAULT_SERVICE_PORT, minimum=1, maximum=65535),
            proxy_host=host,
            proxy_port=port,
            idle_timeout=settings.number(IDLE_TIMEOUT_VARIABLE, DEFAULT_IDLE_TIMEOUT, minimum=1.0),
            app_ports=parse_ports(settings.text(APP_PORTS_VARIABLE) or DEFAULT_APP_PORTS),
        )

    @property
    def enabled(self) -> bool:
        return self.domain is not None

    def ports_for(self, template: str | None) -> tuple[int, ...]:
        """Where a job's app may listen on its first node, in the order tried: the port its URL template
        names (when the site allows it), then the service port (apps that follow ``JARVICE_SERVICE_PORT``)."""
        named = template_port(template)
        if named is None or named == self.service_port or not any(a <= named <= b for a, b in self.app_ports):
            return (self.service_port,)
        return (named, self.service_port)

    def access(self, name: str, number: int) -> ServiceAccess:
        """The label, port and secrets of job ``name``/``number`` (the same on every call)."""
        if self.domain is None:
            raise ConfigError(f"{JOBS_DOMAIN_VARIABLE} is not set.")
        return ServiceAccess(
            name=name,
            number=number,
            label=self.label(name, number),
            port=self.service_port,
            domain=self.domain,
            password=_token(self.key, "password", name, number, PASSWORD_LENGTH, _ALPHABET),
            randoms={n: _token(self.key, f"random{n}", name, number, n, _ALPHABET) for n in RANDOM_LENGTHS},
        )

    def label(self, name: str, number: int) -> str:
        number = abs(number)
        return f"{number}-{_token(self.key, 'label', name, number, LABEL_TOKEN_LENGTH, _BASE32)}"

    def label_matches(self, label: str, name: str) -> bool:
        """Whether ``label`` is the label of job ``name`` (compared in constant time)."""
        if not LABEL_PATTERN.match(label):
            return False
        number = int(label.split("-", 1)[0])
        return hmac.compare_digest(self.label(name, number), label)

    def describe(self) -> dict[str, str]:
        if self.domain is None:
            return {"interactive jobs": f"off ({JOBS_DOMAIN_VARIABLE} not set)"}
        return {
            "interactive jobs": self.domain.describe(),
            "service port": str(self.service_port),
            "proxy": f"{self.proxy_host}:{self.proxy_port}",
            "proxy idle timeout": f"{self.idle_timeout:g} s",
            "ports a URL template may name": ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.app_ports),
        }


def parse_listen(text: str, variable: str = PROXY_LISTEN_VARIABLE) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port)."""
    value = text.strip()
    match = re.fullmatch(
        r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p1>[0-9]{1,5})|(?P<host>[A-Za-z0-9.-]+):(?P<p2>[0-9]{1,5})", value
    )
    if not match:
        raise ConfigError(f"{variable}={text!r} is not host:port (e.g. {DEFAULT_PROXY_LISTEN}).")
    host = match["v6"] or match["host"]
    port = int(match["p1"] or match["p2"])
    if not 1 <= port <= 65535:
        raise ConfigError(f"{variable}={text!r}: port {port} is out of range (1-65535).")
    return host, port
