"""HTTP to slurmrestd: kept-alive connections, over TCP or over an SSH channel.

A small thread-safe pool of :class:`http.client.HTTPConnection` objects is
reused across calls.  With ``via_ssh`` each connection rides a
``direct-tcpip`` channel of the service user's kept-open SSH connection.
Every failure to reach slurmrestd (refused, reset, time-out) becomes a
:class:`~dssr_core.ClusterError`; HTTP error statuses are returned to the
caller, which reads slurmrestd's ``errors``.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from dssr_core import ClusterError, metrics

from .itemwise import decode_itemwise
from .tokens import scrub

#: idle connections kept per client
POOL_SIZE = 4


class Channel(Protocol):
    """What an SSH ``direct-tcpip`` channel offers (paramiko.Channel)."""

    def sendall(self, data: bytes) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def close(self) -> None: ...


class _ChannelReader(io.RawIOBase):
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._channel.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ChannelSocket:
    """Makes an SSH channel look enough like a socket for :mod:`http.client`."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def sendall(self, data: bytes) -> None:
        self._channel.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_ChannelReader(self._channel))

    def settimeout(self, timeout: float | None) -> None:
        self._channel.settimeout(timeout)

    def setsockopt(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        self._channel.close()


class TunnelConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is a channel opened by ``opener``."""

    def __init__(self, host: str, port: int, opener: Callable[[], Channel], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        channel = self._opener()
        channel.settimeout(self.timeout)
        self.sock = ChannelSocket(channel)


#: an answer's array to decode item by item: its key, and the conversion of each item (None: left out)
Items = tuple[str, Callable[[Any], Any]]


@dataclass(frozen=True)
class Response:
    status: int
    #: the decoded JSON body ({} when the body is empty or not JSON)
    body: dict[str, Any]
    text: str


class HttpClient:
    """Sends requests to one slurmrestd, reusing connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        scheme: str = "http",
        tunnel: Callable[[str, int], Channel] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.scheme = scheme
        self._tunnel = tunnel
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _new(self) -> http.client.HTTPConnection:
        if self._tunnel is not None:
            tunnel = self._tunnel
            return TunnelConnection(self.host, self.port, lambda: tunnel(self.host, self.port), self.timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
        items: Items | None = None,
    ) -> Response:
        """One request; a kept-alive connection the server had closed is replaced once.

        With ``items`` (key, conversion), the answer's array ``key`` holds its
        items converted one by one as they are decoded (:mod:`.itemwise`).
        """
        with metrics.cluster_call(call_kind(method, path)) as call:
            response = self._request(method, path, headers, body, items)
            if response.status >= 400:
                call.outcome = metrics.ERROR
            return response

    def _request(
        self, method: str, path: str, headers: Mapping[str, str], body: Mapping[str, Any] | None, items: Items | None
    ) -> Response:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **headers}
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn, reused = self._take()
            try:
                conn.request(method, path, body=payload, headers=all_headers)
                raw = conn.getresponse()
                data = raw.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if reused and attempt == 1:
                    continue
                raise self._unreachable(exc) from None
            except (OSError, http.client.HTTPException, EOFError) as exc:
                conn.close()
                raise self._unreachable(exc) from None
            except Exception as exc:  # paramiko's own errors (channel refused, transport lost)
                conn.close()
                if isinstance(exc, ClusterError):
                    raise
                raise self._unreachable(exc) from None
            if raw.will_close:
                conn.close()
            else:
                self._give_back(conn)
            return _response(raw.status, data, items)
        raise AssertionError("unreachable")

    def _unreachable(self, exc: BaseException) -> ClusterError:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            why = f"no answer within {self.timeout:g} s"
        else:
            why = scrub(str(exc)) or exc.__class__.__name__
        how = " through the SSH connection" if self._tunnel else ""
        return ClusterError(f"slurmrestd at {self.host}:{self.port} cannot be reached{how}: {why}.")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def call_kind(method: str, path: str) -> str:
    """A slurmrestd call as a metrics label: ``GET /slurm/v0.0.40/job/{id}`` (no job id, no query)."""
    return f"slurmrestd {method} " + re.sub(r"/[0-9]+(?=/|$)", "/{id}", path.split("?", 1)[0])


def _response(status: int, data: bytes, items: Items | None = None) -> Response:
    """The answer; with ``items`` (key, conversion), a successful one's array ``key`` decoded item by item."""
    text = data.decode("utf-8", "replace")
    try:
        if not text.strip():
            body = {}
        elif items is not None and status < 400:
            body = decode_itemwise(text, *items)
        else:
            body = json.loads(text)
    except json.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return Response(status, body, text)
