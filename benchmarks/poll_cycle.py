"""The upstream's poll cycle against the real test cluster, through the real HTTP server.

Run as root on the test bed: ``python benchmarks/poll_cycle.py``.  It reuses a
test cluster that is up (``python -m tests.cluster up``), or brings one
up and takes it down afterwards.  The server (``python -m dssr_server``, slurm
connector, shell executor) runs in its own process, so its RSS is its own.

Prints: one poll cycle (``/running`` + ``/queued`` + ``/runstatus`` of every
running job) with 32 running and 8 queued jobs, ``/runstatus`` median and p99,
sequential ``/submit`` median, jobs/s with 8 concurrent submitters, server RSS.
Every loop is bounded in count and in time.

Scale mode, a real site's size: ``python benchmarks/poll_cycle.py --scale 400,1000``.
For each size N, under the exclusive session lock: the 22.05 cluster goes into
its scale configuration (``testbed.set_scale_2205``: 512 CPUs per node,
``jobacct_gather/none``), N jobs named as the upstream names its jobs
(``jarvice_<name>``, owner kirby, payload ``sleep``) are submitted with plain
``sbatch`` as kirby (the load; what is measured is the polling), and once all
N run, poll cycles go through the real ``dssr-server`` process.  Prints ms per
running job per cycle, ``/runstatus`` median and p99, the server's RSS (now and
peak), the machine's memory in use, the job records slurmctld holds (ended jobs
stay listed by slurmrestd until purged), and PASS/FAIL against the targets; then
cancels the jobs and restores the normal configuration.  ``--interface http``
polls over slurmrestd instead of SSH; ``--keep-alive`` polls over one
persistent connection instead of a new one per request; ``--server-python``
runs the server with another checkout's interpreter (its venv), e.g. the code
before a change; ``--server-python benchmarks/runstatus_floor.sh`` runs a
stand-in whose ``/runstatus`` does no work (the floor under the real figure).
"""

from __future__ import annotations

import argparse
import functools
import http.client
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
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cluster_session import on_cluster  # noqa: E402 - needs the sys.path line above
from tests import cluster as testbed  # noqa: E402 - needs the sys.path line above
from tests.helpers import legacy_template, submit_args  # noqa: E402 - needs the sys.path line above
from tests.slurm.cluster_support import slurm_env  # noqa: E402 - needs the sys.path line above

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


class KeepAlive:
    """``call`` over one persistent HTTP/1.1 connection, as a client that keeps a session open polls."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def __call__(self, url: str, path: str, args: Any = None) -> tuple[int, Any]:
        if args is None:
            self.conn.request("GET", path)
        else:
            self.conn.request(
                "POST",
                path,
                body=urllib.parse.urlencode({"args": json.dumps(args)}),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        resp = self.conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body or b"null") if resp.status == 200 else body.decode()


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (its own threads, from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_in_use_gib() -> tuple[float, float]:
    """(MemTotal - MemAvailable, MemTotal) of this machine, GiB."""
    info = {ln.split(":")[0]: int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()}
    return (info["MemTotal"] - info["MemAvailable"]) / 2**20, info["MemTotal"] / 2**20


class Bench:
    def __init__(self, cluster: testbed.Cluster, workdir: Path, python: str = sys.executable, **extra_env: str) -> None:
        self.cluster = cluster
        port = free_port()
        self.ttl = 2.0
        env = {
            **os.environ,
            **slurm_env(cluster, workdir),
            "JARVICE_SLURM_STATUS_TTL": f"{self.ttl:g}",
            "WAITRESS_PORT": str(port),
            "WAITRESS_BIND_ADDRESS": "127.0.0.1",
            "WAITRESS_THREADS": "16",
            "JARVICE_SCHED_LOGLEVEL": "30",
            **extra_env,
        }
        #: the server's log (stderr): kept out of the figures printed here
        self.log_path = workdir / "server.log"
        with self.log_path.open("wb") as log:
            self.server = subprocess.Popen([python, "-m", "dssr_server"], env=env, cwd=workdir, stderr=log)
        self.url = f"http://127.0.0.1:{port}"
        self.poll: Callable[..., tuple[int, Any]] = call  # how cycle() calls the server
        self.jobs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(self.url, "/gc")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise SystemExit(f"the server did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
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

    def cycle(self, runstatus_times: list[float], listing_times: list[float] | None = None) -> float:
        start = time.perf_counter()
        _, running = self.poll(self.url, "/running")
        self.poll(self.url, "/queued")
        if listing_times is not None:
            listing_times.append(time.perf_counter() - start)
        for name, jobid in running:
            t = time.perf_counter()
            self.poll(self.url, "/runstatus", {"name": name, "number": 0, "jobid": jobid})
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
                list(
                    pool.map(
                        lambda j: call(self.url, f"/request/{j['name']}/{j['number']}/{j['jobid']}/abort", {"qs": {}}),
                        self.jobs,
                    )
                )
            time.sleep(2)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda j: call(self.url, "/exitstatus", j), self.jobs))
        finally:
            self.server.terminate()
            self.server.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", metavar="N[,N...]", help="scale mode: these numbers of running jobs, e.g. 400,1000")
    ap.add_argument(
        "--interface",
        choices=["cli", "http"],
        default="cli",
        help="scale mode: the connector's interface (cli: SSH, http: slurmrestd)",
    )
    ap.add_argument(
        "--server-python",
        default=sys.executable,
        help="scale mode: the interpreter running dssr-server (another checkout's venv)",
    )
    ap.add_argument(
        "--cycles",
        type=int,
        help="scale mode: poll cycles per size (default: 4,000 /runstatus calls in all, at least 10 cycles)",
    )
    ap.add_argument(
        "--keep-alive",
        action="store_true",
        help="scale mode: poll over one persistent connection (default: a new one per request)",
    )
    a = ap.parse_args(argv)
    if not a.scale:
        return on_cluster(measure)
    try:
        sizes = [int(n) for n in a.scale.split(",")]
    except ValueError:
        ap.error(f"--scale wants numbers separated by commas, not {a.scale!r}")
    if any(not 1 <= n <= MAX_SCALE for n in sizes):
        ap.error(f"--scale: each size between 1 and {MAX_SCALE}, not {a.scale!r}")
    failed = 0
    for n in sizes:  # one hold of the session lock per size
        failed |= on_cluster(
            functools.partial(
                scale,
                n=n,
                interface=a.interface,
                python=a.server_python,
                cycles=a.cycles or max(10, 4000 // n),
                keep_alive=a.keep_alive,
            )
        )
    return failed


def measure(cluster: testbed.Cluster, workdir: Path) -> int:
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
    print(
        f"poll cycle ({RUNNING} running, {QUEUED} queued), {len(cycles)} cycles: "
        f"median {statistics.median(cycles) * 1000:.1f} ms, max {max(cycles) * 1000:.1f} ms  (target <= 100 ms)"
    )
    print(
        f"/runstatus: median {statistics.median(runstatus) * 1000:.2f} ms, p99 {pct(runstatus, 99) * 1000:.2f} ms"
        f"  ({len(runstatus)} calls; target median <= 5 ms)"
    )
    print(
        f"sequential /submit: median {statistics.median(sequential) * 1000:.1f} ms over {len(sequential)}"
        f"  (target <= 60 ms)"
    )
    print(
        f"{CONCURRENT_SUBMITTERS} concurrent submitters: {concurrent_rate:.1f} jobs/s"
        f" over {RUNNING + QUEUED - SEQUENTIAL_SUBMITS - 1} jobs  (target >= 30)"
    )
    print(f"server RSS: {rss:.1f} MB  (target <= 80 MB)")
    return 0


# ------------------------------------------------------------------ scale mode
MAX_SCALE = 2 * testbed.SCALE_CPUS - 24  # a few CPUs of the scale nodes stay free
TARGET_MS_PER_JOB, TARGET_P99_MS, TARGET_RSS_MB = 1.0, 5.0, 80.0
FLOOR_CALLS = 500
SCALE_DEADLINE = 420.0  # seconds for one size, from the scale configuration to the last cycle


def scale(
    cluster: testbed.Cluster, workdir: Path, n: int, interface: str, python: str, cycles: int, keep_alive: bool = False
) -> int:
    """One size of the scale mode (see the module docstring); 0 when every target is met."""
    t_end = time.monotonic() + SCALE_DEADLINE
    cluster.wait_idle(120)
    testbed.set_scale_2205(True)
    bench = None
    jobids: list[str] = []
    try:
        extra = (
            {}
            if interface == "cli"
            else {
                "JARVICE_SLURM_INTERFACE": "http",
                "JARVICE_SLURMRESTD_ADDR": "http://127.0.0.1",
                "JARVICE_SLURMRESTD_PORT": cluster.restd_url.rsplit(":", 1)[1],
            }
        )
        bench = Bench(cluster, workdir, python, **extra)
        memory_before, memory_total = memory_in_use_gib()
        started = time.perf_counter()
        jobids = load(cluster, n)
        submitted = time.perf_counter() - started
        mine = set(jobids)
        while len({j for _, j in call(bench.url, "/running")[1]} & mine) < n:
            if time.monotonic() > t_end:
                print(f"{n} jobs did not all run in time")
                return 1
            time.sleep(1)
        memory_loaded, _ = memory_in_use_gib()
        records = records_held(cluster)
        runstatus: list[float] = []
        listings: list[float] = []
        times: list[float] = []
        load_average = os.getloadavg()[0]
        if keep_alive:
            bench.poll = KeepAlive(bench.url)
        floor = []  # what any request costs here: /live reads no job and asks the cluster nothing
        for _ in range(FLOOR_CALLS):
            t = time.perf_counter()
            bench.poll(bench.url, "/live")
            floor.append(time.perf_counter() - t)
        cpu_before = cpu_seconds(bench.server.pid)
        for _ in range(cycles):
            if time.monotonic() > t_end:
                break
            times.append(bench.cycle(runstatus, listings))
            time.sleep(0.05)
        server_cpu = cpu_seconds(bench.server.pid) - cpu_before
        rss, peak = rss_mb(bench.server.pid), peak_rss_mb(bench.server.pid)
    finally:
        cancel(cluster, jobids)
        if bench is not None:
            bench.server.terminate()
            bench.server.wait(10)
        try:
            cluster.wait_idle(300)
        finally:
            testbed.set_scale_2205(False)
    per_job = statistics.median(times) * 1000 / n
    p99 = pct(runstatus, 99) * 1000
    checks = [per_job <= TARGET_MS_PER_JOB, p99 <= TARGET_P99_MS, peak <= TARGET_RSS_MB]
    print(
        f"scale {n} running ({'SSH' if interface == 'cli' else 'slurmrestd'}; {python}"
        f"{'; one persistent connection' if keep_alive else ''}): "
        f"{len(jobids)} jobs submitted in {submitted:.1f} s"
    )
    print(
        f"  poll cycle, {len(times)} cycles: median {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms = {per_job:.2f} ms per running job  "
        f"(target <= {TARGET_MS_PER_JOB:g}) {'PASS' if checks[0] else 'FAIL'}"
    )
    print(
        f"  server CPU: {server_cpu * 1000 / len(times) / n:.2f} ms per running job per cycle "
        f"(the server process alone; the client shares these cores)"
    )
    print(
        f"  /running + /queued: median {statistics.median(listings) * 1000:.0f} ms (a new squeue every "
        f"{bench.ttl:g} s); machine load average {load_average:.1f} on {os.cpu_count()} cores"
    )
    print(f"  HTTP floor: /live median {statistics.median(floor) * 1000:.2f} ms ({FLOOR_CALLS} calls)")
    print(
        f"  /runstatus: median {statistics.median(runstatus) * 1000:.2f} ms, p99 {p99:.2f} ms, "
        f"max {max(runstatus) * 1000:.0f} ms ({len(runstatus)} calls; target p99 <= {TARGET_P99_MS:g}) {'PASS' if checks[1] else 'FAIL'}"
    )
    print(
        f"  server RSS: {rss:.1f} MB, peak {peak:.1f} MB  (target <= {TARGET_RSS_MB:g}) "
        f"{'PASS' if checks[2] else 'FAIL'}"
    )
    print(
        f"  machine memory in use: {memory_before:.1f} GiB before the jobs, {memory_loaded:.1f} GiB with them "
        f"(of {memory_total:.1f} GiB)"
    )
    print(
        f"  slurmctld held {records} job records, {records - n} of them ended jobs not yet purged (slurmrestd's "
        f"GET /jobs lists them all; squeue only the live ones)"
    )
    return 0 if all(checks) else 1


def records_held(cluster: testbed.Cluster) -> int:
    """How many job records slurmctld holds, ended ones included (they stay for MinJobAge and until purged)."""
    return len(cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"], user="root", timeout=60).stdout.split())


def load(cluster: testbed.Cluster, n: int) -> list[str]:
    """``n`` sleeping jobs named as the upstream's (``jarvice_<name>``), submitted by kirby with plain sbatch."""
    script = (
        f"seq 1 {n} | xargs -P 4 -I@ sbatch --parsable --job-name=jarvice_scale-{os.getpid()}-@ "
        "--mem=64 --output=/dev/null --wrap='exec sleep 1800'"
    )
    out = cluster.run(script, user="kirby", timeout=SCALE_DEADLINE).stdout.split()
    return [line.split(";")[0] for line in out]


def cancel(cluster: testbed.Cluster, jobids: list[str]) -> None:
    for start in range(0, len(jobids), 200):
        cluster.run(["scancel", *jobids[start : start + 200]], user="root", check=False, timeout=120)


if __name__ == "__main__":
    raise SystemExit(main())
