"""The server's own settings: where it listens, how it logs, which ``hpc_script`` entry it reads.

Read from the first implementation's variables (``WAITRESS_*``,
``JARVICE_SCHED_LOGLEVEL``, ``JARVICE_UPSTREAM_SCRIPT_KEY``) and this
project's (``JARVICE_DSSR_LOG_FORMAT``, ``JARVICE_DSSR_READY_MAX_AGE``).  A bad
value is a :class:`~dssr_core.ConfigError` naming the variable; the library
(``dssr_core``, the ``dssr`` command) never reads them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from dssr_core import ConfigError, DownstreamSettings, Settings, runs_host_commands

LOOPBACK = "127.0.0.1"
ALL_ADDRESSES = "0.0.0.0"
BIND_VARIABLE = "WAITRESS_BIND_ADDRESS"
#: one label of a host name (RFC 1123): letters, digits and inner hyphens, at most 63
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


@dataclass(frozen=True)
class ServerSettings:
    """How ``dssr-server`` serves (the connector and the executor as :class:`~dssr_core.DownstreamSettings` reads them)."""

    connector: str = "local"
    executor: str = "shell"
    log_level: int = 20
    port: int = 5000
    host: str = LOOPBACK
    threads: int = 8
    #: which entry of ``hpc_script`` to use (default: the executor's name)
    script_key: str | None = None
    #: ``text`` (one line per event) or ``json`` (one object per line, with the request id)
    log_format: str = "text"
    #: ``/ready`` says 503 when the last good contact with the cluster is older than this (seconds)
    ready_max_age: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "ServerSettings":
        """Read ``JARVICE_BAREMETAL_*``, ``WAITRESS_*`` and the server's ``JARVICE_*`` variables.

        Without an address, the server listens on every address, but on
        loopback only when jobs would run on this host (local connector,
        ``shell`` executor): a network must be asked for there.
        """
        plugins = DownstreamSettings.from_settings(settings)
        host = bind_address(settings) or (
            LOOPBACK if runs_host_commands(plugins.connector, plugins.executor, settings) else ALL_ADDRESSES
        )
        return cls(
            connector=plugins.connector,
            executor=plugins.executor,
            log_level=settings.integer("JARVICE_SCHED_LOGLEVEL", 20, minimum=0, maximum=50),
            port=settings.integer("WAITRESS_PORT", 5000, minimum=1, maximum=65535),
            host=host,
            threads=settings.integer("WAITRESS_THREADS", 8, minimum=1, maximum=256),
            script_key=settings.text("JARVICE_UPSTREAM_SCRIPT_KEY"),
            log_format=settings.choice("JARVICE_DSSR_LOG_FORMAT", "text", ("text", "json")),
            ready_max_age=settings.number("JARVICE_DSSR_READY_MAX_AGE", 60.0, minimum=1.0),
        )


def bind_address(settings: Settings) -> str | None:
    """``WAITRESS_BIND_ADDRESS`` checked before anything listens: an IP address (``[::1]`` too) or a
    host name that resolves; None when unset.  A :class:`ConfigError` names the variable (or ``--host``).

    Checked here: the shape (``999.1.1.1``, ``host:port``, spaces), RFC 6761's
    ``.invalid`` names (which never resolve), and the name's resolution.  Whether
    the address is one of this host's is known only when binding (``dssr-server``
    says so then, naming the variable too).
    """
    value = settings.text(BIND_VARIABLE)
    if value is None:
        return None
    name = settings.label(BIND_VARIABLE)
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", bare) or bare.count(":") > 1:
        raise ConfigError(f"{name}={value!r} is not an IP address (IPv4: four numbers from 0 to 255; or IPv6).")
    if ":" in bare:
        raise ConfigError(f"{name}={value!r} is not an address: give the port on its own (WAITRESS_PORT, --port).")
    labels = bare[:-1].split(".") if bare.endswith(".") else bare.split(".")
    if len(bare) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ConfigError(f"{name}={value!r} is neither an IP address nor a host name.")
    if labels[-1].lower() == "invalid":
        raise ConfigError(f"{name}={value!r} names no host: .invalid names never resolve (RFC 6761).")
    try:
        socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise ConfigError(f"{name}={value!r} does not resolve to an address ({why}).") from None
    return bare
