"""The proxy of interactive jobs: HTTP and WebSocket from the site's reverse proxy to a job's app.

It listens on ``JARVICE_DSSR_PROXY_LISTEN`` (plain HTTP; TLS is the site
reverse proxy's), reads one request head, finds the job from the ``Host``
header (host-based domain) or the path prefix (path-based), opens a stream to
the job's first node and service port through the connector (for Slurm: an
SSH ``direct-tcpip`` channel through the login node) and then relays bytes
both ways.  A WebSocket upgrade is relayed like any request: after the app's
``101`` the connection is a plain byte pipe.

One request per client connection: the request is passed on with
``Connection: close`` (upgrades excepted), so a front proxy that pools its
connections can never send one job's request down another job's tunnel.
Every refusal (malformed label, unknown or ended job, a job that is not
interactive) is the same ``404``, so nothing can be learnt from it.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
from dataclasses import dataclass

from ._connector import Stream
from ._errors import DssrError
from ._interactive import LABEL_PATTERN, JobsDomain
from ._services import JobServices, Target

log = logging.getLogger("dssr_core.proxy")  # its name in logs, stable

#: the largest request head accepted (bytes)
MAX_HEAD = 64 * 1024
#: seconds a client has to send its request head
HEAD_TIMEOUT = 30.0
#: seconds between two checks that the jobs behind open tunnels still run
REAP_INTERVAL = 2.0
#: connections served at once; more wait in the listen backlog
MAX_CONNECTIONS = 512
#: request headers dropped on the way: hop-by-hop ones (RFC 9110 7.6.1), set again by the proxy
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class Request:
    """The head of one HTTP/1.x request."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((value for key, value in self.headers if key.lower() == low), None)

    @property
    def upgrade(self) -> str | None:
        """The protocol asked for (``websocket``) when the request is an upgrade."""
        connection = {t.strip().lower() for t in (self.header("Connection") or "").split(",")}
        upgrade = self.header("Upgrade")
        return upgrade.strip() if upgrade and "upgrade" in connection else None


class BadHead(ValueError):
    """The bytes received are not an HTTP/1.x request head."""


def parse_head(data: bytes) -> Request:
    """Parse a request head (up to and without the blank line)."""
    try:
        text = data.decode("iso-8859-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadHead("undecodable") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[2].startswith("HTTP/1."):
        raise BadHead("bad request line")
    method, target, version = parts
    if not target.startswith("/") or any(c in target for c in "\x00\r\n\t "):
        raise BadHead("bad request target")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise BadHead("bad header line")
        headers.append((name, value.strip()))
    return Request(method, target, version, tuple(headers))


def route(domain: JobsDomain, request: Request) -> str | None:
    """The label the request is for (from its ``Host`` or its path), or None."""
    if domain.path is None:
        host = (request.header("Host") or "").strip().lower()
        host = re.sub(r":[0-9]{1,5}$", "", host)
        label, dot, rest = host.partition(".")
        return label if dot and rest == domain.host and LABEL_PATTERN.match(label) else None
    prefix = domain.path[:-1]  # the grammar puts '$' last
    path = request.target.split("?", 1)[0]
    if not path.startswith(prefix):
        return None
    label, _, _ = path[len(prefix) :].partition("/")
    return label if LABEL_PATTERN.match(label) else None


def forwarded_head(request: Request, client: str) -> bytes:
    """The head sent to the app: hop-by-hop headers replaced, ``Connection: close`` unless an upgrade."""
    lines = [f"{request.method} {request.target} {request.version}"]
    lines += [
        f"{k}: {v}" for k, v in request.headers if k.lower() not in _HOP_BY_HOP and k.lower() != "x-forwarded-for"
    ]
    earlier = request.header("X-Forwarded-For")
    lines.append(f"X-Forwarded-For: {earlier + ', ' if earlier else ''}{client}")
    upgrade = request.upgrade
    if upgrade is not None:
        lines += ["Connection: Upgrade", f"Upgrade: {upgrade}"]
    else:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")


def answer(status: int, reason: str, text: str) -> bytes:
    body = (text + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
    )
    return head.encode() + body


def page(status: int, reason: str, title: str, text: str, refresh: int) -> bytes:
    """A short HTML page for the user's browser, which asks again after ``refresh`` seconds."""
    body = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh}">'
        f"<title>{title}</title></head>\n<body><h1>{title}</h1><p>{text}</p></body></html>\n"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"Retry-After: {refresh}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
    )
    return head.encode() + body


NOT_FOUND = answer(404, "Not Found", "No running interactive job at this address.")
#: seconds after which the 502 page asks again
RETRY_AFTER = 5
BAD_GATEWAY = page(
    502,
    "Bad Gateway",
    "The application is not answering (yet)",
    "This job's application does not accept connections (yet). A job that has just started may still be "
    f"starting it: this page tries again every {RETRY_AFTER} seconds.",
    RETRY_AFTER,
)
BAD_REQUEST = answer(400, "Bad Request", "Malformed HTTP request.")
TOO_LARGE = answer(431, "Request Header Fields Too Large", "The request head is too large.")


class JobProxy:
    """The proxy server: one listening socket, a thread per connection, a reaper of ended jobs' tunnels."""

    def __init__(self, services: JobServices, host: str, port: int, *, idle_timeout: float) -> None:
        domain = services.settings.domain
        assert domain is not None
        self.domain = domain
        self.services = services
        self.idle_timeout = idle_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(128)
        except OSError:
            self._sock.close()
            raise
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._threads: list[threading.Thread] = []

    def start(self) -> "JobProxy":
        for target, name in ((self._accept_loop, "dssr-proxy"), (self._reap_loop, "dssr-proxy-reaper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("interactive-job proxy listening on http://%s:%s for %s", *self.address, self.domain.describe())
        return self

    def close(self) -> None:
        """Stop accepting, close every open tunnel.  Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- loops ----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, peer = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self._slots.acquire()
            thread = threading.Thread(target=self._serve, args=(client, peer[0]), name="dssr-proxy-conn", daemon=True)
            thread.start()

    def _reap_loop(self) -> None:
        while not self._stop.wait(REAP_INTERVAL):
            if self.services.open_tunnels():
                self.services.reap()

    # -- one connection ----------------------------------------------------------------
    def _serve(self, client: socket.socket, peer: str) -> None:
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._handle(client, peer)
        except Exception:
            log.exception("proxy connection from %s failed", peer)
        finally:
            _shut(client)
            self._slots.release()

    def _handle(self, client: socket.socket, peer: str) -> None:
        client.settimeout(HEAD_TIMEOUT)
        head, rest = _read_head(client)
        if head is None:
            if rest:
                client.sendall(TOO_LARGE if len(rest) >= MAX_HEAD else BAD_REQUEST)
            return
        try:
            request = parse_head(head)
        except BadHead:
            client.sendall(BAD_REQUEST)
            return
        label = route(self.domain, request)
        try:
            target = self.services.resolve(label) if label else None
        except DssrError as exc:
            log.warning("proxy: cannot look the job up: %s", exc)
            client.sendall(BAD_GATEWAY)
            return
        if target is None:
            log.info("proxy: %s from %s: no running interactive job at that address", request.method, peer)
            client.sendall(NOT_FOUND)
            return
        try:
            upstream = self.services.connect(target)
        except DssrError as exc:
            # the app is not up yet, or has gone away (the job is ending): a normal path, one line
            log.info(
                "proxy: job %s: its app on %s port %s is not answering, 502: %s",
                target.ref.jobid,
                target.node,
                target.port,
                exc,
            )
            client.sendall(BAD_GATEWAY)
            return
        self._relay(client, upstream, target, forwarded_head(request, peer) + rest, request)

    def _relay(self, client: socket.socket, upstream: Stream, target: Target, first: bytes, request: Request) -> None:
        closed = threading.Event()

        def close() -> None:
            closed.set()
            _shut(client)
            _close(upstream)

        tunnel = self.services.track(target.ref, close)
        log.info(
            "proxy: job %s: %s -> %s:%s%s",
            target.ref.jobid,
            request.method,
            target.node,
            target.port,
            f" (upgrade to {request.upgrade})" if request.upgrade else "",
        )
        try:
            upstream.sendall(first)
            client.settimeout(None)
            _pump(client, upstream, self.idle_timeout, closed)
        except (OSError, ValueError):
            pass  # a side went away (or close() closed both): the tunnel is over
        finally:
            self.services.untrack(target.ref, tunnel)
            close()


def _pump(client: socket.socket, upstream: Stream, idle: float, closed: threading.Event) -> None:
    """Relay bytes both ways until one side ends, nothing moves for ``idle`` seconds, or ``closed`` is set."""
    upstream.settimeout(idle)
    client_open = True
    while not closed.is_set():
        wanted = [client, upstream] if client_open else [upstream]
        readable, _, _ = select.select(wanted, [], [], idle)
        if not readable:
            log.info("proxy: tunnel idle for %g s: closed", idle)
            return
        if client in readable:
            data = client.recv(65536)
            if not data:
                client_open = False
                _half_close(upstream)
            else:
                upstream.sendall(data)
        if upstream in readable:
            data = upstream.recv(65536)
            if not data:
                return
            client.sendall(data)


def _half_close(stream: Stream) -> None:
    """Tell the app the client has nothing more to send (the answer may still come)."""
    if isinstance(stream, socket.socket):
        stream.shutdown(socket.SHUT_WR)
    else:
        shutdown_write = getattr(stream, "shutdown_write", None)  # paramiko.Channel
        if shutdown_write is not None:
            shutdown_write()


def _read_head(client: socket.socket) -> tuple[bytes | None, bytes]:
    """(head, bytes after it) or (None, what came) when no complete head arrived."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) >= MAX_HEAD:
            return None, data
        try:
            chunk = client.recv(65536)
        except OSError:
            return None, b""
        if not chunk:
            return None, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _close(stream: Stream) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - closing a stream that broke already
        pass
