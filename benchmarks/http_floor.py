"""What any request costs the server, whatever it asks: waitress alone, then dssr-server's app.

Run: ``python benchmarks/http_floor.py`` (no cluster needed).  Two servers in
processes of their own under the same waitress settings as ``dssr-server``
(8 threads): a bare WSGI app answering ``{}``, then dssr-server's Flask app on
the local connector.  A client in this process sends ``GET /live`` over one
persistent connection.  Prints, for each, the wall time per request and the
server process's own CPU time per request (from /proc, so the client's work,
which shares the machine's cores, is not counted).  This is the floor under
every ``/runstatus`` of ``benchmarks/poll_cycle.py``.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
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


def measure(kind: str, root: str) -> tuple[float, float]:
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
            conn.request("GET", "/live")
            conn.getresponse().read()
        cpu, started = cpu_seconds(server.pid), time.perf_counter()
        for _ in range(REQUESTS):
            conn.request("GET", "/live")
            conn.getresponse().read()
        wall = (time.perf_counter() - started) * 1000 / REQUESTS
        return wall, (cpu_seconds(server.pid) - cpu) * 1000 / REQUESTS
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    with tempfile.TemporaryDirectory() as root:
        for kind, label in (("bare", "waitress, bare WSGI app"), ("dssr", "waitress, dssr-server's app")):
            wall, cpu = measure(kind, root)
            print(f"{label}: {wall:.3f} ms per request, server CPU {cpu:.3f} ms per request "
                  f"({REQUESTS} GET /live, one persistent connection)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
