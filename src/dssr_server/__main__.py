"""``dssr-server``: serve the legacy API with waitress.

Flags override the environment (``JARVICE_BAREMETAL_CONNECTOR``,
``JARVICE_BAREMETAL_EXECUTOR``, ``WAITRESS_BIND_ADDRESS``, ``WAITRESS_PORT``,
``WAITRESS_THREADS``).  A bad setting stops start-up with one line naming it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Sequence

from dssr_core import (
    PROXY_LISTEN_VARIABLE,
    ConfigError,
    Downstream,
    DssrError,
    JobProxy,
    Settings,
    runs_host_commands,
)

from .app import AUTH_TOKEN_VARIABLE, MAX_BODY, create_app
from .logs import configure as configure_logging
from .serve import create_server
from .settings import ServerSettings

log = logging.getLogger("dssr_server")
#: the interpreter's thread switch interval in the server, seconds (Python's default: 5 ms).  A request
#: waits this long at most, each time it needs the GIL, behind the thread parsing a big queue answer.
SWITCH_INTERVAL = 0.001


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dssr-server",
        description="Serve the JARVICE legacy downstream API on a connector and an executor.",
    )
    parser.add_argument("--connector", help="connector plugin (default: $JARVICE_BAREMETAL_CONNECTOR or local)")
    parser.add_argument(
        "--executor",
        help="executor plugin (default: $JARVICE_BAREMETAL_EXECUTOR, "
        "else shell with the local connector and singularity with others)",
    )
    parser.add_argument(
        "--host",
        help="bind address (default: $WAITRESS_BIND_ADDRESS, else 127.0.0.1 with the "
        "local connector and the shell executor and 0.0.0.0 with others)",
    )
    parser.add_argument("--port", help="port (default: $WAITRESS_PORT or 5000)")
    parser.add_argument("--threads", help="worker threads (default: $WAITRESS_THREADS or 8)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, env: Settings | None = None) -> Settings:
    """The environment, with the command-line flags written over their variables."""
    overrides = {
        "JARVICE_BAREMETAL_CONNECTOR": args.connector,
        "JARVICE_BAREMETAL_EXECUTOR": args.executor,
        "WAITRESS_BIND_ADDRESS": args.host,
        "WAITRESS_PORT": args.port,
        "WAITRESS_THREADS": args.threads,
    }
    base = env.as_dict() if env is not None else None
    return Settings(base, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    try:
        server_settings = ServerSettings.from_settings(settings)
    except ConfigError as exc:
        print(f"dssr-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(server_settings.log_level, server_settings.log_format)
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        downstream = Downstream.from_settings(settings)
        app = create_app(downstream, settings)
    except DssrError as exc:
        print(f"dssr-server: {exc}", file=sys.stderr)
        return 2
    try:
        server = create_server(
            app,
            host=server_settings.host,
            port=server_settings.port,
            threads=server_settings.threads,
            max_body=MAX_BODY,
        )
    except OSError as exc:
        downstream.close()
        print(
            f"dssr-server: cannot listen on {server_settings.host}:{server_settings.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    proxy = None
    if downstream.services is not None:
        cfg = downstream.interactive
        try:
            proxy = JobProxy(downstream.services, cfg.proxy_host, cfg.proxy_port, idle_timeout=cfg.idle_timeout)
        except OSError as exc:
            server.close()
            downstream.close()
            print(
                f"dssr-server: {PROXY_LISTEN_VARIABLE}: cannot listen on {cfg.proxy_host}:{cfg.proxy_port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
    _report(downstream, server_settings, settings)
    # /ready reads the last contact with the cluster: keep it fresh while the upstream is quiet
    downstream.start_heartbeat(server_settings.ready_max_age / 3)
    if proxy is not None:
        proxy.start()
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("received %s: stopping", signal.Signals(signum).name)
            # ends waitress's loop, which then waits for its worker threads; closing the
            # sockets here instead raced with a worker still answering (EBADF on its trigger)
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.run()
    finally:
        server.close()
        if proxy is not None:
            proxy.close()
        downstream.close()
    log.info("stopped")
    return 0


def _report(downstream: Downstream, server: ServerSettings, settings: Settings) -> None:
    """One start-up report: what serves, where, and how (never a secret)."""
    details = ", ".join(
        f"{key}={value}" for key, value in downstream.describe().items() if key not in ("connector", "executor")
    )
    token = settings.raw(AUTH_TOKEN_VARIABLE) is not None
    auth = "upstream token required" if token else "no upstream authentication"
    reach = "network" if reachable_from_network(server.host) else "loopback only"
    log.info(
        "dssr-server listening on http://%s:%s (%s; connector %s, executor %s, %d threads, %s; %s)",
        server.host,
        server.port,
        reach,
        downstream.connector.name,
        downstream.executor.name,
        server.threads,
        auth,
        details,
    )
    if reach == "network" and not token:
        danger = ""
        if runs_host_commands(downstream.connector.name, downstream.executor.name):
            danger = " and run any command on this host as this server's user (shell executor)"
        log.warning(
            "dssr-server is reachable from the network on %s without %s: anyone who can reach port %s can "
            "submit, read and stop jobs%s. Set %s, or listen on 127.0.0.1.",
            server.host,
            AUTH_TOKEN_VARIABLE,
            server.port,
            danger,
            AUTH_TOKEN_VARIABLE,
        )
    for problem in downstream.check():
        log.warning("start-up check: %s", problem)


def reachable_from_network(host: str) -> bool:
    """False only for a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name: assume it names a network interface


if __name__ == "__main__":
    sys.exit(main())
