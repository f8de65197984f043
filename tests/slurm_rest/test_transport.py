"""HTTP to slurmrestd: connections kept alive and reused, SSH channels as sockets, failures as ClusterErrors."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from dssr_core import ClusterError
from dssr_slurm.rest.transport import HttpClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # http.server's name
        if self.path == "/slow":
            threading.Event().wait(2)
        body = json.dumps(
            {"path": self.path, "peer": self.client_address[1], "user": self.headers.get("X-SLURM-USER-NAME")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class SocketChannel:
    """Stand-in for a paramiko direct-tcpip channel: a TCP socket with the channel's methods."""

    opened: list[tuple[str, int]] = []

    def __init__(self, host: str, port: int) -> None:
        self.opened.append((host, port))
        self._sock = socket.create_connection((host, port))

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def close(self) -> None:
        self._sock.close()


def test_connection_is_kept_alive_across_calls(server: ThreadingHTTPServer) -> None:
    client = HttpClient("127.0.0.1", server.server_address[1], timeout=5)
    first = client.request("GET", "/a", headers={}).body["peer"]
    second = client.request("GET", "/b", headers={}).body["peer"]
    assert first == second  # same client port: same TCP connection
    client.close()


def test_requests_ride_an_ssh_channel_when_tunnelled(server: ThreadingHTTPServer) -> None:
    SocketChannel.opened.clear()
    client = HttpClient("127.0.0.1", server.server_address[1], timeout=5, tunnel=SocketChannel)
    answers = [client.request("GET", f"/{i}", headers={"X-SLURM-USER-NAME": "jarvice"}).body for i in range(3)]
    assert [a["path"] for a in answers] == ["/0", "/1", "/2"] and answers[0]["user"] == "jarvice"
    assert SocketChannel.opened == [("127.0.0.1", server.server_address[1])]  # one channel, reused
    client.close()


def test_concurrent_calls_each_get_an_answer(server: ThreadingHTTPServer) -> None:
    client = HttpClient("127.0.0.1", server.server_address[1], timeout=5)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(client.request("GET", f"/{i}", headers={}).body["path"]))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"/{i}" for i in range(8))
    client.close()


def test_refused_connection_is_a_cluster_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterError, match="cannot be reached"):
        HttpClient("127.0.0.1", port, timeout=2).request("GET", "/", headers={})


def test_slow_answer_is_a_cluster_error_after_the_timeout(server: ThreadingHTTPServer) -> None:
    client = HttpClient("127.0.0.1", server.server_address[1], timeout=0.5)
    with pytest.raises(ClusterError, match="no answer within 0.5 s"):
        client.request("GET", "/slow", headers={})


def test_metrics_name_a_call_by_its_route_without_job_ids_or_query() -> None:
    from dssr_slurm.rest.transport import call_kind

    assert call_kind("DELETE", "/slurm/v0.0.40/job/1234?signal=KILL") == "slurmrestd DELETE /slurm/v0.0.40/job/{id}"
    assert call_kind("GET", "/slurmdb/v0.0.38/job/77") == "slurmrestd GET /slurmdb/v0.0.38/job/{id}"
    assert call_kind("GET", "/slurm/v0.0.38/jobs") == "slurmrestd GET /slurm/v0.0.38/jobs"
