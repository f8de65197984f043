"""What a request costs the server: waitress alone, then dssr-server's app through Flask and its fast path.

Run: ``python benchmarks/http_floor.py`` (no cluster needed).  Servers in
processes of their own under the same waitress settings as ``dssr-server``
(8 threads): a bare WSGI app answering ``{}`` to ``GET /live``, then
dssr-server's app on the local connector answering ``GET /live`` (through
Flask) and ``POST /runstatus`` (its fast path, ``dssr_server.fastpath``; the job
is unknown, so the answer is four nulls).  A client in this process sends
the requests over one persistent connection, then each over a new connection
(closed after its answer, as urllib's clients do).  Prints, for each, the wall
time per request and the server process's own CPU time per request (from
/proc, so the client's work, which shares the machine's cores, is not
counted).  This is the floor under every request of ``benchmarks/poll_cycle.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.poll_cycle import cpu_seconds, free_port

REQUESTS = 3000
WARMUP = 200

SERVER = r"""
import os, sys
from waitress import serve
def bare(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]
if sys.argv[1] == "dssr":
    from dssr_core import Downstream, Settings
    from dssr_server.app import create_app
    settings = Settings(dict(os.environ))
    app = create_app(Downstream.from_settings(settings), settings)
else:
    app = bare
serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=8, _quiet=True)
"""


RUNSTATUS = urllib.parse.urlencode({"args": json.dumps({"name": "jarvice-floor", "number": 1, "jobid": "1"})})
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def ask(conn: http.client.HTTPConnection, path: str, new: bool = False) -> None:
    """One request on ``conn``; with ``new``, on a connection of its own, closed after the answer."""
    if new:
        conn = http.client.HTTPConnection(conn.host, conn.port, timeout=10)
    headers = {"Connection": "close"} if new else {}
    if path == "/runstatus":
        conn.request("POST", path, body=RUNSTATUS, headers=FORM | headers)
    else:
        conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    answer.read()
    if new:
        conn.close()
    if answer.status != 200:
        raise SystemExit(f"{path} answered {answer.status}")


def measure(kind: str, path: str, root: str, new: bool) -> tuple[float, float]:
    port = free_port()
    env = dict(os.environ, JARVICE_BAREMETAL_CONNECTOR="local", JARVICE_LOCAL_ROOT=root)
    server = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port)], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/live")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(WARMUP):
            ask(conn, path, new)
        cpu, started = cpu_seconds(server.pid), time.perf_counter()
        for _ in range(REQUESTS):
            ask(conn, path, new)
        wall = (time.perf_counter() - started) * 1000 / REQUESTS
        return wall, (cpu_seconds(server.pid) - cpu) * 1000 / REQUESTS
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    with tempfile.TemporaryDirectory() as root:
        for new in (False, True):
            print("one persistent connection" if new is False else "a new connection per request")
            for kind, path, label in (
                ("bare", "/live", "waitress, bare WSGI app, GET /live"),
                ("dssr", "/live", "waitress, dssr-server's app, GET /live (Flask)"),
                ("dssr", "/runstatus", "waitress, dssr-server's app, POST /runstatus (fast path)"),
            ):
                wall, cpu = measure(kind, path, root, new)
                print(
                    f"  {label}: {wall:.3f} ms per request, server CPU {cpu:.3f} ms per request ({REQUESTS} requests)"
                )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
