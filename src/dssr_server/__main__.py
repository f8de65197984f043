"""``dssr-server``: serve the legacy API with waitress.

Flags override the environment (``JARVICE_BAREMETAL_CONNECTOR``,
``JARVICE_BAREMETAL_EXECUTOR``, ``WAITRESS_BIND_ADDRESS``, ``WAITRESS_PORT``,
``WAITRESS_THREADS``).  Every setting is checked before the server listens: a bad
one stops start-up with one line naming it (the flag, when one set it) and exit
status 2.  What only the cluster can tell is a warning and ``/ready`` 503.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import signal
import sys
import threading
from importlib import metadata
from types import FrameType
from typing import TYPE_CHECKING, Sequence

import dssr_core
from dssr_core import (
    CONNECTOR_VARIABLE,
    EXECUTOR_VARIABLE,
    PROXY_LISTEN_VARIABLE,
    Downstream,
    DssrError,
    JobProxy,
    Settings,
    runs_host_commands,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

from .app import AUTH_TOKEN_VARIABLE, MAX_BODY, create_app
from .logs import configure as configure_logging
from .serve import create_server
from .settings import BIND_VARIABLE, ServerSettings

log = logging.getLogger("dssr_server")
#: the interpreter's thread switch interval in the server, seconds (Python's default: 5 ms).  A request
#: waits this long at most, each time it needs the GIL, behind the thread parsing a big queue answer.
SWITCH_INTERVAL = 0.001


#: the flags of dssr-server and the variables they write over (a bad value is named by the flag typed)
FLAGS = {
    "--connector": CONNECTOR_VARIABLE,
    "--executor": EXECUTOR_VARIABLE,
    "--host": BIND_VARIABLE,
    "--port": "WAITRESS_PORT",
    "--threads": "WAITRESS_THREADS",
}


def version() -> str:
    """The installed distribution's version (``jarvice-dssr``), else the library's own."""
    try:
        return metadata.version("jarvice-dssr")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return dssr_core.__version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a ``--help`` or ``--version`` that cannot be written fails (argparse drops the error and exits 0)."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            (file or sys.stderr).write(message)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="dssr-server",
        description="Serve the JARVICE legacy downstream API on a connector and an executor.",
        epilog="exit status: 0 stopped by SIGTERM or SIGINT; 2 a bad setting, one line on stderr naming it "
        "(systemd: RestartPreventExitStatus=2). Every variable: docs/settings.md.",
    )
    parser.add_argument("--version", action="version", version=f"dssr-server (jarvice-dssr) {version()}")
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
    """The environment, with the command-line flags written over their variables (and naming them in errors)."""
    given = {flag: getattr(args, flag[2:]) for flag in FLAGS}
    given = {flag: value for flag, value in given.items() if value is not None}
    base = env if env is not None else Settings()
    return base.updated({FLAGS[flag]: flag for flag in given}, **{FLAGS[flag]: value for flag, value in given.items()})


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = parse_args(argv)
        except SystemExit:  # --help, --version: their output must reach its reader before the exit status says so
            sys.stdout.flush()
            raise
    except OSError as exc:  # --help or --version into a closed pipe or a full disk: never a silent 0
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing is written again at exit
        os.close(devnull)
        if isinstance(exc, BrokenPipeError):
            return 128 + signal.SIGPIPE  # as any tool killed by SIGPIPE (dssr too)
        print(f"dssr-server: cannot write its output ({exc.strerror or exc}).", file=sys.stderr)
        return 1
    empty = [flag for flag in FLAGS if getattr(args, flag[2:]) is not None and not getattr(args, flag[2:]).strip()]
    if empty:  # typed, yet no value: the default would be taken silently
        return _refuse(*(f"{flag} is empty: give a value, or leave the flag out." for flag in empty))
    settings = settings_from(args)
    try:
        server_settings = ServerSettings.from_settings(settings)
    except DssrError as exc:  # a bad value (ConfigError), or a plugin that is not installed (PluginError)
        return _refuse(str(exc))
    configure_logging(server_settings.log_level, server_settings.log_format)
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        downstream = Downstream.from_settings(settings)
    except DssrError as exc:
        return _refuse(str(exc))
    faults = downstream.local_faults()
    try:
        app = create_app(downstream, settings)
    except DssrError as exc:
        faults.append(str(exc))
    if faults:
        downstream.close()
        return _refuse(*faults)
    try:
        server = create_server(
            app,
            host=server_settings.host,
            port=server_settings.port,
            threads=server_settings.threads,
            max_body=MAX_BODY,
        )
    except (OSError, ValueError) as exc:
        downstream.close()
        return _refuse(_bind_failure(settings, server_settings, exc))
    proxy = None
    if downstream.services is not None:
        cfg = downstream.interactive
        try:
            proxy = JobProxy(downstream.services, cfg.proxy_host, cfg.proxy_port, idle_timeout=cfg.idle_timeout)
        except OSError as exc:
            server.close()
            downstream.close()
            return _refuse(
                f"{PROXY_LISTEN_VARIABLE}: cannot listen on {cfg.proxy_host}:{cfg.proxy_port}: {exc.strerror or exc}"
            )
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


def _refuse(*lines: str) -> int:
    """A start-up refused for a bad setting: one line per fault on stderr, exit status 2."""
    for line in lines:
        print(f"dssr-server: {' '.join(line.split())}", file=sys.stderr)
    return 2


def _bind_failure(settings: Settings, server: ServerSettings, exc: OSError | ValueError) -> str:
    """Why the listening socket could not be made, naming the setting to change."""
    host = settings.label(BIND_VARIABLE) if settings.raw(BIND_VARIABLE) else "the default address"
    port = settings.label("WAITRESS_PORT")
    where = f"{url_host(server.host)}:{server.port}"
    code = exc.errno if isinstance(exc, OSError) else None
    why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    if code == errno.EADDRINUSE:
        return f"{port}={server.port}: {where} is in use by another process ({why}); choose another port."
    if code == errno.EACCES:
        return f"{port}={server.port}: cannot listen on {where} ({why}): ports below 1024 need privileges."
    if code == errno.EADDRNOTAVAIL:
        return f"{host}={server.host!r} is not an address of this host: cannot listen on {where} ({why})."
    return f"cannot listen on {where} ({host}, {port}): {why}"


def _report(downstream: Downstream, server: ServerSettings, settings: Settings) -> None:
    """One start-up report: what serves, where, and how (never a secret)."""
    details = ", ".join(
        f"{key}={value}" for key, value in downstream.describe().items() if key not in ("connector", "executor")
    )
    token = settings.raw(AUTH_TOKEN_VARIABLE) is not None
    auth = "upstream token required" if token else "no upstream authentication"
    reach = "network" if reachable_from_network(server.host) else "loopback only"
    log.info(
        "dssr-server listening on http://%s:%s (%s; connector %s, executor %s, %d threads, %s; %s; jarvice-dssr %s)",
        url_host(server.host),
        server.port,
        reach,
        downstream.connector.name,
        downstream.executor.name,
        server.threads,
        auth,
        details,
        version(),
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


def url_host(host: str) -> str:
    """``host`` as a URL's authority writes it: an IPv6 address in brackets (``[::1]``)."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


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
