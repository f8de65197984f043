"""Interactive jobs: their public address, their per-job secrets and the URL the user opens.

An interactive job (an AppDef command with ``interactive: true``: a desktop, a
notebook, a web app) serves HTTP on one port, ``JARVICE_SERVICE_PORT``, of its
first node.  The user reaches it through the proxy that ``dssr-server`` runs
(:mod:`dssr_core.proxy`) at an address built from ``JARVICE_JOBS_DOMAIN``,
the same grammar as the JARVICE Helm chart:

* host-based (preferred): ``jobs.example.org`` -> ``https://<label>.jobs.example.org/``
  (a wildcard DNS record and certificate for ``*.jobs.example.org``);
* path-based: ``portal.example.org/job$`` -> ``https://portal.example.org/job<label>/``
  (``$`` stands for the job's label; the app learns the prefix from ``JARVICE_INGRESSPATH``).

Either may start with ``http://`` or ``https://`` (default ``https``: TLS is
the site's reverse proxy's) and carry a ``:port``.

A job's *label* is its number and a token nobody can guess (``42-k3j...``).
The label and the job's secrets (``%NIMBIXPASSWD%``, ``%RANDOM16%`` ...
``%RANDOM128%``) are derived with HMAC-SHA256 from ``JARVICE_DSSR_INTERACTIVE_KEY``
and the job's name and number: every server replica, and a restarted server,
finds the same values without keeping any job database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Mapping

from ._config import Settings
from ._errors import ConfigError

JOBS_DOMAIN_VARIABLE = "JARVICE_JOBS_DOMAIN"
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
#: lengths of the ``%RANDOMn%`` tokens (appdef-template README)
RANDOM_LENGTHS = (16, 32, 64, 128)
PASSWORD_LENGTH = 16
#: characters of the label's token (base32: 5 bits each, 100 bits in all)
LABEL_TOKEN_LENGTH = 20
LABEL_PATTERN = re.compile(r"^[0-9]{1,19}-[a-z2-7]{%d}$" % LABEL_TOKEN_LENGTH)
#: the folder, inside the job's folder, where rank 0 leaves the app's URL template and help page
SERVICE_DIR = ".dssr-service"
#: files of :data:`SERVICE_DIR`: the marker a started interactive job writes, its URL template, its help
MARKER_FILE = "interactive"
URL_FILE = "url.txt"
HELP_FILE = "help.html"
#: the URL used when neither the command nor the image gives one
DEFAULT_URL = "https://%PUBLICADDR%/"
#: the secret variables an executor hands to the job (through its private secrets file)
PASSWORD_VARIABLE = "DSSR_NIMBIXPASSWD"
#: base64 of ``/etc/JARVICE/vncpasswd``: the password as VNC stores it (jarvice-desktop's ``-rfbauth``)
VNC_PASSWORD_VARIABLE = "DSSR_VNCPASSWD"
#: VNC's fixed DES key for stored passwords (the same in every VNC server and client)
_VNC_KEY = bytes([23, 82, 107, 6, 35, 78, 88, 7])

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_DOMAIN = re.compile(r"^(?:(?P<scheme>https?)://)?(?P<host>[^/:]+)(?::(?P<port>[0-9]{1,5}))?(?P<path>/.*)?$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*\$$")
_PLACEHOLDER = re.compile(r"%([A-Z][A-Z0-9_]*)%")
#: ``scheme://%PUBLICADDR%[:port]`` at the start of a URL template
_TEMPLATE_ORIGIN = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://%PUBLICADDR%(?::(?P<port>[0-9]{1,5}))?")
_SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def random_variable(length: int) -> str:
    """The secret variable carrying the job's ``%RANDOM<length>%`` value."""
    return f"DSSR_RANDOM{length}"


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


@dataclass(frozen=True)
class ServiceAccess:
    """Everything one interactive job is given: where it is reached, on which port, its secrets."""

    name: str
    number: int
    label: str
    port: int
    domain: JobsDomain
    password: str = field(repr=False)
    #: ``%RANDOMn%`` values by length
    randoms: Mapping[int, str] = field(repr=False)

    @property
    def public_addr(self) -> str:
        return self.domain.public_addr(self.label)

    @property
    def origin(self) -> str:
        return self.domain.origin(self.label)

    @property
    def base_url(self) -> str:
        return self.domain.base_url(self.label)

    @property
    def ingress_path(self) -> str | None:
        return self.domain.ingress_path(self.label)

    def environment(self) -> dict[str, str]:
        """Variables the app reads (not secret): its port, and its path prefix when path-based."""
        env = {"JARVICE_SERVICE_PORT": str(self.port)}
        if self.ingress_path is not None:
            env["JARVICE_INGRESSPATH"] = self.ingress_path
        return env

    def secrets(self) -> dict[str, str]:
        """The secret values, by the variable an executor passes them in (never in a script)."""
        values = {
            PASSWORD_VARIABLE: self.password,
            VNC_PASSWORD_VARIABLE: base64.b64encode(vnc_password_file(self.password)).decode(),
        }
        values.update({random_variable(n): self.randoms[n] for n in RANDOM_LENGTHS})
        return values

    def values(self, user: str = "") -> dict[str, str]:
        """Every placeholder this downstream knows for the job, name -> value."""
        values = {
            "PUBLICADDR": self.public_addr,
            "NIMBIXPASSWD": self.password,
            "NIMBIXUSER": user,
            "JOBNAME": self.name,
            "BASEURL": self.base_url,
        }
        values.update({f"RANDOM{n}": self.randoms[n] for n in RANDOM_LENGTHS})
        return values

    def connect_url(self, template: str | None, user: str = "") -> str:
        """The URL the user's browser opens, from the command's or the image's template.

        ``scheme://%PUBLICADDR%[:port]`` becomes this job's origin (the port in
        a template, such as the desktop's 5902 or a notebook's 8888, is where the
        app listens on the first node: the proxy goes there, see :func:`template_port`).
        A template that does not lead to the job's own address gives the job's
        root instead: the portal only links to the job.
        """
        text = _TEMPLATE_ORIGIN.sub(lambda _m: self.origin, _first_line(template) or DEFAULT_URL)
        url = substitute(text, self.values(user))
        root = self.origin
        if url != root and not url.startswith((root + "/", root + "?", root + "#")):
            return root + "/"
        return url

    def help_page(self, template: str, url: str, user: str = "") -> str:
        """The image's ``/etc/NAE/help.html`` with the job's values (``%CONNECTURL%`` too)."""
        return substitute(template, {**self.values(user), "CONNECTURL": url})


def _first_line(template: str | None) -> str:
    text = (template or "").strip()
    return text.splitlines()[0].strip() if text else ""


def template_port(template: str | None) -> int | None:
    """The port a URL template names after ``%PUBLICADDR%`` (``https://%PUBLICADDR%:8888/`` -> 8888), the port
    the app listens on; None when it names none or its scheme's own (``:443`` of ``https``)."""
    match = _TEMPLATE_ORIGIN.match(_first_line(template))
    if match is None or match["port"] is None:
        return None
    port = int(match["port"])
    return None if _SCHEME_PORTS.get(match["scheme"].lower()) == port or not 1 <= port <= 65535 else port


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


def vnc_password_file(password: str) -> bytes:
    """The 8 bytes of a VNC password file (``vncpasswd``): the password's first 8 characters,
    DES-encrypted with VNC's fixed key (each key byte bit-reversed, as VNC uses it)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # cryptography < 43
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[no-redef,unused-ignore]  # cryptography < 43 only: unused where the newer one is installed
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in _VNC_KEY) * 3  # three equal keys: single DES
    encryptor = Cipher(TripleDES(key), modes.ECB()).encryptor()
    return encryptor.update(password.encode()[:8].ljust(8, b"\0")) + encryptor.finalize()


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace each ``%NAME%`` known in ``values``; unknown ones stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)


def _token(key: bytes, purpose: str, name: str, number: int, length: int, alphabet: str) -> str:
    """``length`` characters of ``alphabet``, derived from HMAC-SHA256(key, purpose/name/number).

    Bytes are drawn in counter mode; a byte is used only below the largest
    multiple of the alphabet's size, so that every character is equally likely.
    """
    limit = 256 - 256 % len(alphabet)
    out: list[str] = []
    counter = 0
    message = f"{purpose}\0{name}\0{number}".encode()
    while len(out) < length:
        block = hmac.new(key, message + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        out.extend(alphabet[b % len(alphabet)] for b in block if b < limit)
        counter += 1
    return "".join(out[:length])


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
        raw_domain = settings.str(JOBS_DOMAIN_VARIABLE)
        domain = JobsDomain.parse(raw_domain) if raw_domain else None
        key = settings.str(KEY_VARIABLE) or ""
        if domain is not None and len(key) < MIN_KEY_LENGTH:
            state = "is not set" if not key else f"is shorter than {MIN_KEY_LENGTH} characters"
            raise ConfigError(
                f"{KEY_VARIABLE} {state}: interactive jobs ({JOBS_DOMAIN_VARIABLE} is set) need a secret of at "
                f"least {MIN_KEY_LENGTH} characters, the same on every replica (e.g. openssl rand -hex 32)."
            )
        host, port = parse_listen(settings.str(PROXY_LISTEN_VARIABLE, DEFAULT_PROXY_LISTEN) or DEFAULT_PROXY_LISTEN)
        return cls(
            domain=domain,
            key=key.encode(),
            service_port=settings.int(SERVICE_PORT_VARIABLE, DEFAULT_SERVICE_PORT, minimum=1, maximum=65535),
            proxy_host=host,
            proxy_port=port,
            idle_timeout=settings.float(IDLE_TIMEOUT_VARIABLE, DEFAULT_IDLE_TIMEOUT, minimum=1.0),
            app_ports=parse_ports(settings.str(APP_PORTS_VARIABLE) or DEFAULT_APP_PORTS),
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
