"""The server's own settings: where it listens, how it logs, which ``hpc_script`` entry it reads.

Read from the first implementation's variables (``WAITRESS_*``,
``JARVICE_SCHED_LOGLEVEL``, ``JARVICE_UPSTREAM_SCRIPT_KEY``) and this
project's (``JARVICE_DSSR_LOG_FORMAT``, ``JARVICE_DSSR_READY_MAX_AGE``).  A bad
value is a :class:`~dssr_core.ConfigError` naming the variable; the library
(``dssr_core``, the ``dssr`` command) never reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dssr_core import DownstreamSettings, Settings, runs_host_commands

LOOPBACK = "127.0.0.1"
ALL_ADDRESSES = "0.0.0.0"


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
    #: ``text`` (one line per event, as ever) or ``json`` (one object per line, with the request id)
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
        host = settings.str("WAITRESS_BIND_ADDRESS") or (
            LOOPBACK if runs_host_commands(plugins.connector, plugins.executor) else ALL_ADDRESSES
        )
        return cls(
            connector=plugins.connector,
            executor=plugins.executor,
            log_level=settings.int("JARVICE_SCHED_LOGLEVEL", 20, minimum=0, maximum=50),
            port=settings.int("WAITRESS_PORT", 5000, minimum=1, maximum=65535),
            host=host,
            threads=settings.int("WAITRESS_THREADS", 8, minimum=1, maximum=256),
            script_key=settings.str("JARVICE_UPSTREAM_SCRIPT_KEY"),
            log_format=settings.choice("JARVICE_DSSR_LOG_FORMAT", "text", ("text", "json")),
            ready_max_age=settings.float("JARVICE_DSSR_READY_MAX_AGE", 60.0, minimum=1.0),
        )
