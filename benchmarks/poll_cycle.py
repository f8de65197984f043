"""The upstream's poll cycle against the real test cluster, through the real HTTP server.

Run as root on the test bed: ``python benchmarks/poll_cycle.py``.  It reuses a
test cluster that is up (``python tests/cluster/harness.py up``), or brings one
up and takes it down afterwards.  The server (``python -m dssr_server``, slurm
connector, shell executor) runs in its own process, so its RSS is its own.

Prints: one poll cycle (``/running`` + ``/queued`` + ``/runstatus`` of every
running job) with 32 running and 8 queued jobs, ``/runstatus`` median and p99,
sequential ``/submit`` median, jobs/s with 8 concurrent submitters, server RSS.
Every loop is bounded in count and in time.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cluster_session import on_cluster  # noqa: E402
from tests.cluster import harness  # noqa: E402
from tests.helpers import legacy_template, submit_args  # noqa: E402
from tests.slurm.cluster_support import slurm_env  # noqa: E402

RUNNING, QUEUED = 32, 8
SEQUENTIAL_SUBMITS = 16
CONCURRENT_SUBMITTERS = 8
CYCLES = 40
DEADLINE = 240.0  # seconds for the whole measurement, after the cluster is up


def call(url: str, path: str, args: Any = None, timeout: float = 30) -> tuple[int, Any]:
    data = urllib.parse.urlencode({"args": json.dumps(args)}).encode() if args is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data=data), timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Bench:
    def __init__(self, cluster: harness.Cluster, workdir: Path) -> None:
        self.cluster = cluster
        port = free_port()
        env = {**os.environ, **slurm_env(cluster, workdir), "JARVICE_SLURM_STATUS_TTL": "2",
               "WAITRESS_PORT": str(port), "WAITRESS_BIND_ADDRESS": "127.0.0.1", "WAITRESS_THREADS": "16",
               "JARVICE_SCHED_LOGLEVEL": "30"}
        self.server = subprocess.Popen([sys.executable, "-m", "dssr_server"], env=env, cwd=workdir)
        self.url = f"http://127.0.0.1:{port}"
        self.jobs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(self.url, "/gc")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)

    def prepare(self, index: int, queued: bool = False) -> dict[str, Any]:
        """The upstream's /submit args (token minted here, as the upstream does, outside the timings)."""
        devices = ["exclusive=False", "sbatch_mem-per-cpu=100"] + (["sbatch_begin=now+3600"] if queued else [])
        template = legacy_template("sleep 900", extra={"JOBOBJ_DEVICES": json.dumps(devices)})
        bearer = self.cluster.idp.mint(email="kirby@example.com", audience="jarvice")
        return submit_args(f"bench-{os.getpid()}-{index}", index, template, key="shell", bearer=bearer)

    def submit(self, args: dict[str, Any]) -> float:
        start = time.perf_counter()
        status, body = call(self.url, "/submit", args)
        took = time.perf_counter() - start
        if status != 200:
            raise SystemExit(f"/submit failed: {status} {body}")
        self.jobs.append({"name": args["name"], "number": args["number"], "jobid": body[0]})
        return took

    def cycle(self, runstatus_times: list[float]) -> float:
        start = time.perf_counter()
        _, running = call(self.url, "/running")
        call(self.url, "/queued")
        for name, jobid in running:
            t = time.perf_counter()
            call(self.url, "/runstatus", {"name": name, "number": 0, "jobid": jobid})
            runstatus_times.append(time.perf_counter() - t)
        return time.perf_counter() - start

    def counts(self) -> tuple[int, int]:
        mine = {j["jobid"] for j in self.jobs}
        running = [j for _, j in call(self.url, "/running")[1] if j in mine]
        queued = [j for _, j in call(self.url, "/queued")[1] if j in mine]
        return len(running), len(queued)

    def close(self) -> None:
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda j: call(self.url, f"/request/{j['name']}/{j['number']}/{j['jobid']}/abort",
                                             {"qs": {}}), self.jobs))
            time.sleep(2)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda j: call(self.url, "/exitstatus", j), self.jobs))
        finally:
            self.server.terminate()
            self.server.wait(10)


def main() -> int:
    return on_cluster(measure)


def measure(cluster: harness.Cluster, workdir: Path) -> int:
    bench = Bench(cluster, workdir)
    t_end = time.monotonic() + DEADLINE
    try:
        bench.submit(bench.prepare(0))  # warm-up: opens kirby's SSH connection
        sequential = [bench.submit(bench.prepare(i)) for i in range(1, SEQUENTIAL_SUBMITS + 1)]
        remaining_running = RUNNING - len(bench.jobs)
        plan = [bench.prepare(1000 + i) for i in range(remaining_running)]
        plan += [bench.prepare(2000 + i, queued=True) for i in range(QUEUED)]
        start = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENT_SUBMITTERS) as pool:
            list(pool.map(bench.submit, plan))
        concurrent_rate = len(plan) / (time.perf_counter() - start)
        while bench.counts() != (RUNNING, QUEUED):
            if time.monotonic() > t_end:
                print(f"jobs did not reach {RUNNING} running / {QUEUED} queued: {bench.counts()}")
                return 1
            time.sleep(0.5)
        runstatus: list[float] = []
        cycles = []
        for _ in range(CYCLES):
            if time.monotonic() > t_end:
                break
            cycles.append(bench.cycle(runstatus))
            time.sleep(0.05)
        rss = rss_mb(bench.server.pid)
    finally:
        bench.close()
    print(f"poll cycle ({RUNNING} running, {QUEUED} queued), {len(cycles)} cycles: "
          f"median {statistics.median(cycles) * 1000:.1f} ms, max {max(cycles) * 1000:.1f} ms  (target <= 100 ms)")
    print(f"/runstatus: median {statistics.median(runstatus) * 1000:.2f} ms, p99 {pct(runstatus, 99) * 1000:.2f} ms"
          f"  ({len(runstatus)} calls; target median <= 5 ms)")
    print(f"sequential /submit: median {statistics.median(sequential) * 1000:.1f} ms over {len(sequential)}"
          f"  (target <= 60 ms)")
    print(f"{CONCURRENT_SUBMITTERS} concurrent submitters: {concurrent_rate:.1f} jobs/s"
          f" over {RUNNING + QUEUED - SEQUENTIAL_SUBMITS - 1} jobs  (target >= 30)")
    print(f"server RSS: {rss:.1f} MB  (target <= 80 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
