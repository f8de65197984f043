"""What probes and scrapers cost: /live, /ready and /metrics of a real dssr-server.

Run: ``python benchmarks/operations.py`` (no cluster needed: the server runs the
local connector and the shell executor in its own process on a free port).
It first sends 2,000 legacy requests (so that the metrics hold a realistic set
of labels), then times 500 of each probe, sequentially.

Prints: median and p99 latency of /live, /ready, /metrics, the size of one
scrape, and the median of /running before and after the 2,000 requests (the
instrumentation's cost per request shows there).  Every loop is bounded.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server.live import Server

ROUNDS = 500
WARM = 2000


def timed(server: Server, path: str, rounds: int) -> list[float]:
    took = []
    for _ in range(rounds):
        start = time.perf_counter()
        answer = server.get(path)
        took.append(time.perf_counter() - start)
        assert answer.status == 200, (path, answer.status)
    return took


def report(name: str, took: list[float]) -> None:
    ms = sorted(t * 1000 for t in took)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:<28} median {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms   ({len(ms)} requests)")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "state").start()
        try:
            before = timed(server, "/running", ROUNDS)
            paths = ["/running", "/queued", "/nodes", "/gc", "/no/such/path"]
            for i in range(WARM):
                server.get(paths[i % len(paths)])
            report("/running (fresh server)", before)
            report(f"/running (after {WARM})", timed(server, "/running", ROUNDS))
            report("/live", timed(server, "/live", ROUNDS))
            report("/ready", timed(server, "/ready", ROUNDS))
            report("/metrics", timed(server, "/metrics", ROUNDS))
            print(f"one scrape: {len(server.get('/metrics').body):,} bytes")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
