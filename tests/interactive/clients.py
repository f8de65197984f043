"""Plain HTTP and WebSocket clients for the proxy tests (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    #: whether the server closed the connection right after the answer
    closed: bool = False

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _target(url: str, connect: tuple[str, int] | None) -> tuple[tuple[str, int], str, str]:
    """(address to connect to, Host header, request target) for ``url``."""
    parts = urlsplit(url)
    host = parts.netloc
    address = connect or (parts.hostname or "", parts.port or 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return address, host, target


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, rest


def get(url: str, connect: tuple[str, int] | None = None, timeout: float = 15.0) -> Reply:
    """``GET url`` (keep-alive asked for: the proxy must still close), the body read to the end."""
    address, host, target = _target(url, connect)
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode())
        status, headers, body = _read_head(sock)
        length = int(headers.get("content-length", "-1"))
        closed = False
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            body += chunk
        if not closed:
            sock.settimeout(5)
            try:
                closed = sock.recv(1) == b""
            except OSError:
                closed = False
    return Reply(status, headers, body, closed)


class WebSocket:
    """A minimal RFC 6455 client: text frames, masked as a client must."""

    def __init__(self, url: str, connect: tuple[str, int] | None = None, timeout: float = 15.0) -> None:
        address, host, target = _target(url, connect)
        self.sock = socket.create_connection(address, timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.status, self.headers, self._buffer = _read_head(self.sock)
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.accepted = self.status == 101 and self.headers.get("sec-websocket-accept") == expected

    def send(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if len(data) < 126:
            head = bytes([0x81, 0x80 | len(data)])
        elif len(data) < 65536:
            head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(data))
        else:
            head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(data))
        self.sock.sendall(head + mask + masked)

    def _exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the WebSocket was closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def receive(self) -> str:
        head = self._exactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exactly(8))[0]
        return self._exactly(length).decode()

    def closed_by_peer(self, timeout: float) -> bool:
        """True when the other side closes the connection within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except ConnectionError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()
