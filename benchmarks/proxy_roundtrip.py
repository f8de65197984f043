"""The interactive-job proxy against the real test cluster: what a user's browser waits for.

Run as root on the test bed: ``python benchmarks/proxy_roundtrip.py``.  It reuses
the Slurm 22.05 test cluster when it is up, or brings one up and takes it down
afterwards.  One interactive job runs ``tests/interactive/webapp.py`` on a node
(natively: the nodes have the Apptainer stand-in); the proxy runs in this
process, the client talks to it over loopback.

Prints: seconds from submission to a non-empty ``info`` url; median and p99 of
an HTTP request through the proxy on a new connection (each one a new SSH
``direct-tcpip`` channel through the login node); median and p99 of a WebSocket
echo on one open tunnel; the same echo straight to the node (no proxy, no SSH)
for comparison; requests/s with 8 concurrent clients.  Bounded in count and time.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cluster_session import on_cluster  # noqa: E402 - needs the sys.path line above
from dssr_core import Settings  # noqa: E402 - needs the sys.path line above
from dssr_slurm.connector import SlurmConnector  # noqa: E402 - needs the sys.path line above
from tests import cluster as testbed  # noqa: E402 - needs the sys.path line above
from tests.interactive.clients import WebSocket, get  # noqa: E402 - needs the sys.path line above
from tests.interactive.support import Site, end, interactive_spec, submit, wait_running, wait_url  # noqa: E402 - needs the sys.path line above
from tests.server.live import free_port  # noqa: E402 - needs the sys.path line above
from tests.singularity.cluster_support import connector_settings  # noqa: E402 - needs the sys.path line above

REQUESTS = 200
ECHOES = 500
CONCURRENT = 8


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(cluster: testbed.Cluster, workdir: Path) -> int:
    connector = SlurmConnector(Settings(connector_settings(cluster, workdir)))
    port = free_port()
    site = Site(connector, f"http://jobs.localhost:{port}", port)
    spec = interactive_spec(cluster, nodes=1)
    started = time.monotonic()
    ref, _ = submit(site.ds, spec)
    try:
        status = wait_running(site.ds, ref)
        url = wait_url(site.ds, ref)["url"]
        to_url = time.monotonic() - started
        whoami = url.split("?")[0] + "whoami"
        http = []
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            assert get(whoami, connect=site.address).status == 200
            http.append(time.perf_counter() - t0)

        def echo_times(ws: WebSocket) -> list[float]:
            times = []
            for i in range(ECHOES):
                t0 = time.perf_counter()
                ws.send(f"m{i}")
                assert ws.receive() == f"echo:m{i}"
                times.append(time.perf_counter() - t0)
            ws.close()
            return times

        proxied = echo_times(WebSocket(url.split("?")[0] + "ws", connect=site.address))
        node_address = testbed.NODES[status.nodes[0]]
        direct = echo_times(WebSocket(f"http://{node_address}:{site.settings.service_port}/ws"))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENT) as pool:
            codes = list(pool.map(lambda _: get(whoami, connect=site.address).status, range(REQUESTS)))
        rate = REQUESTS / (time.perf_counter() - t0)
        assert set(codes) == {200}
    finally:
        end(site.ds, ref)
        site.close()
        connector.close()
    ms = 1000
    print(f"submission to info url (job start + app listening): {to_url:.1f} s")
    print(
        f"HTTP request through the proxy, new connection each: median {statistics.median(http) * ms:.1f} ms, "
        f"p99 {pct(http, 0.99) * ms:.1f} ms ({REQUESTS} requests)"
    )
    print(
        f"WebSocket echo on one proxied tunnel: median {statistics.median(proxied) * ms:.2f} ms, "
        f"p99 {pct(proxied, 0.99) * ms:.2f} ms ({ECHOES} echoes)"
    )
    print(
        f"WebSocket echo straight to the node: median {statistics.median(direct) * ms:.2f} ms, "
        f"p99 {pct(direct, 0.99) * ms:.2f} ms"
    )
    print(f"HTTP requests/s through the proxy with {CONCURRENT} concurrent clients: {rate:.0f}")
    return 0


def main() -> int:
    return on_cluster(measure)


if __name__ == "__main__":
    sys.exit(main())
