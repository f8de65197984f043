"""Submission as the upstream sends it, through the real ``dssr-server``, against the real test cluster.

Run as root on the test bed, with nothing else running: ``python benchmarks/submit.py`` (over SSH) or
``python benchmarks/submit.py --interface http`` (over slurmrestd v0.0.38).  It reuses the Slurm 22.05
test cluster when it is up (``python -m tests.cluster up``), or brings one up and takes it
down afterwards.  ``--server-python`` runs the server with another checkout's interpreter (the code
before a change).  Prints, in one run:

* the floor: one ``sbatch -H`` as the job's user over a kept SSH session (SSH), or one held
  ``POST job/submit`` with the user's token (slurmrestd), measured here, outside the server;
* ``/submit`` one at a time: median and p99, against the targets;
* bursts of distinct names from concurrent submitters (one user, then three users in turn): jobs/s,
  every answer 200 with a job of its own (no id twice, exactly one job per name in slurmctld), no
  5xx, the server's peak connections to sshd or slurmrestd, and where a submission's time went
  (the server's own figures from ``/metrics``: time in cluster calls, the rest of the request in the
  server, and the rest of the client's wait before the server took the request).

Every loop is bounded in count and in time; every job is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cluster_session import on_cluster  # noqa: E402 - needs the sys.path line above
from benchmarks.poll_cycle import Bench, call, pct  # noqa: E402 - needs the sys.path line above
from tests import cluster as testbed  # noqa: E402 - needs the sys.path line above
from tests.helpers import legacy_template, submit_args  # noqa: E402 - needs the sys.path line above

USERS = ("kirby", "mario", "dovahkiin")
TARGET_SSH_RATIO, TARGET_SSH_P99_MS = 3.0, 100.0
TARGET_REST_MEDIAN_MS, TARGET_REST_P99_MS = 100.0, 250.0
TARGET_JOBS_PER_S = 50.0
DEADLINE = 600.0  # seconds for the whole measurement, once the cluster is up


class Submitter(Bench):
    """The server process of poll_cycle's Bench, with submissions as several users and a burst mode."""

    def __init__(self, cluster: testbed.Cluster, workdir: Path, python: str, interface: str, threads: int) -> None:
        extra = {"WAITRESS_THREADS": str(threads)}
        if interface == "http":
            extra.update(
                JARVICE_SLURM_INTERFACE="http",
                JARVICE_SLURMRESTD_ADDR="http://127.0.0.1",
                JARVICE_SLURMRESTD_PORT=cluster.restd_url.rsplit(":", 1)[1],
                JARVICE_SLURMRESTD_API_VERSION="v0.0.38",
                JARVICE_SLURMRESTD_VIA_SSH="true",
            )
        super().__init__(cluster, workdir, python, **extra)
        self.interface = interface
        self.tag = f"sub{os.getpid()}"
        self.template = legacy_template("true", extra={"JOBOBJ_DEVICES": json.dumps(["exclusive=False"])})
        self.lock = threading.Lock()

    def args(self, index: int, user: str = "kirby") -> dict[str, Any]:
        """The upstream's /submit args (the token minted here, outside the timings)."""
        bearer = self.cluster.idp.mint(email=f"{user}@example.com", user=user, audience="jarvice")
        return submit_args(f"{self.tag}-{index}", index, self.template, key="shell", bearer=bearer)

    def timed(self, args: dict[str, Any]) -> tuple[float, int, Any]:
        start = time.perf_counter()
        status, body = call(self.url, "/submit", args)
        took = time.perf_counter() - start
        if status == 200:
            with self.lock:
                self.jobs.append({"name": args["name"], "number": args["number"], "jobid": body[0]})
        return took, status, body


def floor(cluster: testbed.Cluster, interface: str, count: int) -> list[float]:
    """One held submission as kirby outside the server, ``count`` times (the jobs are cancelled)."""
    user = cluster.users["kirby"]
    times, ids = [], []
    if interface == "cli":
        import paramiko

        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        # as the server's pool connects: TCP_NODELAY, or each command waits on delayed ACKs (~40 ms)
        sock = socket.create_connection((cluster.host, cluster.ssh_port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.connect(
            cluster.host,
            cluster.ssh_port,
            username=user.name,
            key_filename=str(user.key_path),
            look_for_keys=False,
            allow_agent=False,
            sock=sock,
        )
        transport = client.get_transport()
        assert transport is not None
        try:
            for i in range(count):
                start = time.perf_counter()
                channel = transport.open_session()
                channel.exec_command(f"sbatch -H --parsable -J jarvice_floor-{i} -o /dev/null --wrap true")
                out = channel.makefile().read().decode()
                channel.recv_exit_status()
                channel.close()
                times.append(time.perf_counter() - start)
                ids.append(out.strip().split(";")[0])
        finally:
            client.close()
    else:
        token = cluster.idp.mint(email=user.email, user=user.name)
        workdir = f"{cluster.scratch}/users/kirby"
        body = json.dumps(
            {
                "script": "#!/bin/bash\ntrue\n",
                "job": {
                    "name": "jarvice_floor",
                    "hold": True,
                    "current_working_directory": workdir,
                    "standard_output": "/dev/null",
                    "environment": {"PATH": "/bin"},
                },
            }
        ).encode()
        headers = {"X-SLURM-USER-NAME": user.name, "X-SLURM-USER-TOKEN": token, "Content-Type": "application/json"}
        for _ in range(count):
            start = time.perf_counter()
            request = urllib.request.Request(
                f"{cluster.restd_url}/slurm/v0.0.38/job/submit", data=body, headers=headers, method="POST"
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                ids.append(str(json.loads(answer.read())["job_id"]))
            times.append(time.perf_counter() - start)
    cluster.run(["scancel", *ids], user="root", check=False)
    return times


def burst_floor(cluster: testbed.Cluster, count: int, submitters: int) -> float:
    """Jobs/s of ``count`` plain ``sbatch`` of a job like the benchmark's (``true``, one task, started at
    once) from ``submitters`` concurrent channels of one kept SSH session as kirby: what Slurm itself
    takes on this machine while it starts the jobs, with no server and no protocol."""
    import paramiko

    user = cluster.users["kirby"]
    sock = socket.create_connection((cluster.host, cluster.ssh_port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        cluster.host,
        cluster.ssh_port,
        username=user.name,
        key_filename=str(user.key_path),
        look_for_keys=False,
        allow_agent=False,
        sock=sock,
    )
    transport = client.get_transport()
    assert transport is not None
    tag = f"jarvice_floorburst-{os.getpid()}"

    def one(i: int) -> None:
        channel = transport.open_session()
        channel.exec_command(f"sbatch --parsable -J {tag}-{i} -n 1 -o /dev/null --wrap true")
        channel.makefile().read()
        channel.recv_exit_status()
        channel.close()

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(submitters) as pool:
            list(pool.map(one, range(count)))
        return count / (time.perf_counter() - start)
    finally:
        client.close()


def metrics(url: str) -> dict[str, float]:
    """The server's /metrics samples that say where time went: ``name{labels}`` -> value."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    wanted = re.compile(
        r"^(dssr_cluster_call_duration_seconds_(?:sum|count)|dssr_http_request_duration_seconds_"
        r"(?:sum|count)|dssr_ssh_connections_opened_total)(\{[^}]*\})? ([0-9.e+-]+)$"
    )
    found = {}
    for line in text.splitlines():
        match = wanted.match(line)
        if match:
            found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


def by_kind(delta: dict[str, float], n: int) -> str:
    """The cluster calls per submission, by kind: ``sbatch 1.00 x 27.1 ms, sinfo 0.03 x 9.0 ms``."""
    parts = []
    for key, count in sorted(delta.items()):
        found = re.match(r'dssr_cluster_call_duration_seconds_count\{kind="([^"]+)"\}', key)
        if found and count > 0:
            seconds = delta.get(key.replace("_count{", "_sum{"), 0.0)
            parts.append(f"{found.group(1)} {count / n:.2f} x {seconds / count * 1000:.1f} ms")
    return ", ".join(parts) or "none"


def queue_depth(log: Path, start: int) -> int:
    """The deepest waitress task queue (requests waiting for a server thread) the server logged after ``start``."""
    text = log.read_bytes()[start:].decode(errors="replace")
    return max((int(d) for d in re.findall(r"Task queue depth is (\d+)", text)), default=0)


def connections(pid: int, port: int) -> int:
    """The process's established TCP connections to ``port`` (sshd or slurmrestd)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def burst(bench: Submitter, plan: list[dict[str, Any]], submitters: int, port: int) -> dict[str, Any]:
    before = metrics(bench.url)
    log_start = bench.log_path.stat().st_size
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], connections(bench.server.pid, port))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(submitters) as pool:
        results = list(pool.map(bench.timed, plan))
    elapsed = time.perf_counter() - start
    done.set()
    watcher.join()
    after = metrics(bench.url)
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    depth = queue_depth(bench.log_path, log_start)
    return {"elapsed": elapsed, "results": results, "delta": delta, "peak": peak[0], "depth": depth}


def report_burst(label: str, outcome: dict[str, Any], plan: list[dict[str, Any]], cluster: testbed.Cluster) -> bool:
    results, delta, n = outcome["results"], outcome["delta"], len(plan)
    statuses = [status for _, status, _ in results]
    ids = [body[0] for _, status, body in results if status == 200]
    rate = n / outcome["elapsed"]
    names = [f"jarvice_{a['name']}" for a in plan]
    listed = cluster.run(
        ["squeue", "-h", "-t", "all", "-n", ",".join(names), "-o", "%j"], user="root", timeout=60
    ).stdout.split()
    per_name = {name: listed.count(name) for name in names}
    once = all(count == 1 for count in per_name.values())
    ok = statuses.count(200) == n and len(set(ids)) == n and once
    latency = [took for took, _, _ in results]
    request_s = delta.get('dssr_http_request_duration_seconds_sum{endpoint="/submit"}', 0.0) / n
    cluster_s = sum(v for k, v in delta.items() if k.startswith("dssr_cluster_call_duration_seconds_sum")) / n
    print(
        f"  {label}: {n} submissions, {rate:.1f} jobs/s (target >= {TARGET_JOBS_PER_S:g}) "
        f"{'PASS' if rate >= TARGET_JOBS_PER_S else 'FAIL'}; /submit median {statistics.median(latency) * 1000:.0f}"
        f" ms, p99 {pct(latency, 99) * 1000:.0f} ms"
    )
    print(
        f"    answers: {statuses.count(200)} x 200, {sum(1 for s in statuses if s >= 500)} x 5xx, "
        f"{len(set(ids))} distinct job ids; one job per name in slurmctld: {'yes' if once else 'NO'}; "
        f"peak connections of the server to the cluster: {outcome['peak']}"
    )
    print(
        f"    per submission: {statistics.mean(latency) * 1000:.0f} ms at the client = "
        f"{cluster_s * 1000:.0f} ms in cluster calls + {(request_s - cluster_s) * 1000:.0f} ms in the server "
        f"+ {(statistics.mean(latency) - request_s) * 1000:.0f} ms before the server took the request"
        f" (deepest wait queue: {outcome['depth']} requests)"
    )
    print(f"    cluster calls per submission: {by_kind(delta, n)}")
    return ok


def measure(
    cluster: testbed.Cluster,
    workdir: Path,
    *,
    interface: str,
    python: str,
    sequential: int,
    burst_size: int,
    submitters: int,
    threads: int,
) -> int:
    t_end = time.monotonic() + DEADLINE
    cluster.wait_idle(120)
    bench = Submitter(cluster, workdir, python, interface, threads)
    port = cluster.ssh_port if interface == "cli" else int(cluster.restd_url.rsplit(":", 1)[1])
    failed = False
    try:
        index = iter(range(1_000_000))
        for user in USERS:  # warm-up: each user's connection, the token keys, the cluster's shape
            bench.timed(bench.args(next(index), user))
        floor_times = floor(cluster, interface, sequential)
        seq = []
        before = metrics(bench.url)
        for _ in range(sequential):
            took, status, body = bench.timed(bench.args(next(index)))
            if status != 200:
                print(f"/submit failed: {status} {body}")
                return 1
            seq.append(took)
        floor_ms, median_ms, p99_ms = (
            statistics.median(floor_times) * 1000,
            statistics.median(seq) * 1000,
            pct(seq, 99) * 1000,
        )
        what = "one sbatch -H over a kept SSH session" if interface == "cli" else "one held POST job/submit"
        print(
            f"submit ({'SSH' if interface == 'cli' else 'slurmrestd v0.0.38'}; {python}; {threads} server threads;"
            f" load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        print(f"  floor, {what} as kirby: median {floor_ms:.1f} ms over {len(floor_times)}")
        if interface == "cli":
            checks = [median_ms <= TARGET_SSH_RATIO * floor_ms, p99_ms <= TARGET_SSH_P99_MS]
            targets = (
                f"targets: median <= {TARGET_SSH_RATIO:g} x floor = {TARGET_SSH_RATIO * floor_ms:.1f} ms, "
                f"p99 <= {TARGET_SSH_P99_MS:g} ms"
            )
        else:
            checks = [median_ms <= TARGET_REST_MEDIAN_MS, p99_ms <= TARGET_REST_P99_MS]
            targets = f"targets: median <= {TARGET_REST_MEDIAN_MS:g} ms, p99 <= {TARGET_REST_P99_MS:g} ms"
        print(
            f"  /submit one at a time: median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms over {len(seq)} ({targets})"
            f" {'PASS' if all(checks) else 'FAIL'}"
        )
        failed |= not all(checks)
        after = metrics(bench.url)
        spent = {key: (after.get(key, 0.0) - before.get(key, 0.0)) / len(seq) for key in after}
        request_s = spent.get('dssr_http_request_duration_seconds_sum{endpoint="/submit"}', 0.0)
        cluster_s = sum(v for k, v in spent.items() if k.startswith("dssr_cluster_call_duration_seconds_sum"))
        print(
            f"    per submission: {statistics.mean(seq) * 1000:.1f} ms at the client = {cluster_s * 1000:.1f} ms in "
            f"cluster calls + {(request_s - cluster_s) * 1000:.1f} ms in the server + "
            f"{(statistics.mean(seq) - request_s) * 1000:.1f} ms in HTTP (client, waitress)"
        )
        print(f"    cluster calls per submission: {by_kind({k: v * len(seq) for k, v in spent.items()}, len(seq))}")
        for label, users in (("one user", USERS[:1]), ("three users", USERS)):
            if time.monotonic() > t_end:
                print("  (deadline reached: bursts left out)")
                return 1
            plan = [bench.args(i, users[i % len(users)]) for i in (next(index) for _ in range(burst_size))]
            outcome = burst(bench, plan, submitters, port)
            failed |= not report_burst(f"burst, {submitters} submitters, {label}", outcome, plan, cluster)
            failed |= len(plan) / outcome["elapsed"] < TARGET_JOBS_PER_S
        if interface == "cli":  # last: its jobs would load the machine under the figures above
            cluster.wait_idle(300)
            rate = burst_floor(cluster, burst_size, submitters)
            print(
                f"  burst floor, {burst_size} plain sbatch (jobs that start at once) from {submitters} channels "
                f"of one SSH session: {rate:.1f} jobs/s"
            )
    finally:
        bench.close()
        cluster.wait_idle(300)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interface", choices=["cli", "http"], default="cli", help="cli: SSH; http: slurmrestd")
    ap.add_argument("--server-python", default=sys.executable, help="the interpreter running dssr-server")
    ap.add_argument("--sequential", type=int, default=30, help="submissions one at a time (and floor samples)")
    ap.add_argument("--burst", type=int, default=300, help="submissions in each burst")
    ap.add_argument("--submitters", type=int, default=16, help="concurrent submitters in a burst")
    ap.add_argument("--threads", type=int, default=8, help="the server's worker threads (its default: 8)")
    a = ap.parse_args(argv)
    for name in ("sequential", "burst", "submitters", "threads"):
        if not 1 <= getattr(a, name) <= 2000:
            ap.error(f"--{name} between 1 and 2000, not {getattr(a, name)}")
    run: Callable[[testbed.Cluster, Path], int] = lambda cluster, workdir: measure(  # noqa: E731 - annotated, so the callback's type is checked
        cluster,
        workdir,
        interface=a.interface,
        python=a.server_python,
        sequential=a.sequential,
        burst_size=a.burst,
        submitters=a.submitters,
        threads=a.threads,
    )
    return on_cluster(run)


if __name__ == "__main__":
    raise SystemExit(main())
