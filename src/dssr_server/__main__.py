"""``dssr-server``: serve the legacy API with waitress.

Flags override the environment (``JARVICE_BAREMETAL_CONNECTOR``,
``JARVICE_BAREMETAL_EXECUTOR``, ``WAITRESS_BIND_ADDRESS``, ``WAITRESS_PORT``,
``WAITRESS_THREADS``).  A bad setting stops start-up with one line naming it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Sequence

import waitress

from dssr_core import ConfigError, Downstream, DssrError, ServerSettings, Settings

from .app import AUTH_TOKEN_VARIABLE, create_app
from .logs import configure as configure_logging

log = logging.getLogger("dssr_server")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dssr-server",
        description="Serve the JARVICE legacy downstream API on a connector and an executor.",
    )
    parser.add_argument("--connector", help="connector plugin (default: $JARVICE_BAREMETAL_CONNECTOR or slurm)")
    parser.add_argument("--executor", help="executor plugin (default: $JARVICE_BAREMETAL_EXECUTOR or singularity)")
    parser.add_argument("--host", help="bind address (default: $WAITRESS_BIND_ADDRESS or 0.0.0.0)")
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
    try:
        downstream = Downstream.from_settings(settings)
        app = create_app(downstream, settings)
    except DssrError as exc:
        print(f"dssr-server: {exc}", file=sys.stderr)
        return 2
    try:
        server = waitress.create_server(
            app, host=server_settings.host, port=server_settings.port, threads=server_settings.threads
        )
    except OSError as exc:
        downstream.close()
        print(f"dssr-server: cannot listen on {server_settings.host}:{server_settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    _report(downstream, server_settings, settings)
    # /ready reads the last contact with the cluster: keep it fresh while the upstream is quiet
    downstream.start_heartbeat(server_settings.ready_max_age / 3)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("received %s: stopping", signal.Signals(signum).name)
            server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.run()
    except (OSError, ValueError):
        # closing the listening socket from the signal handler ends the loop
        if not stopping.is_set():
            raise
    finally:
        downstream.close()
    log.info("stopped")
    return 0


def _report(downstream: Downstream, server: ServerSettings, settings: Settings) -> None:
    """One start-up report: what serves, where, and how (never a secret)."""
    details = ", ".join(
        f"{key}={value}" for key, value in downstream.describe().items() if key not in ("connector", "executor")
    )
    auth = "upstream token required" if settings.raw(AUTH_TOKEN_VARIABLE) else "no upstream authentication"
    log.info(
        "dssr-server listening on http://%s:%s (connector %s, executor %s, %d threads, %s; %s)",
        server.host, server.port, downstream.connector.name, downstream.executor.name,
        server.threads, auth, details,
    )
    for problem in downstream.check():
        log.warning("start-up check: %s", problem)


if __name__ == "__main__":
    sys.exit(main())
