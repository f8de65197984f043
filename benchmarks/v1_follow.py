"""50 followers of 10 running jobs for 60 s through ``GET /v1/jobs/{id}/output?follow=true``, on the real cluster.

    python benchmarks/v1_follow.py [--followers 50] [--jobs 10] [--seconds 60] [--interface cli|http]

Each job prints a numbered line every 0.1 s for ``--seconds``; every follower
must receive every line of its job once and in order, and its stream must
close once the job has ended.  Printed: lines and bytes delivered, the
connector's output reads (one per followed job per interval, however many
followers), the server's peak thread count (waitress's fixed pool: at most
``JARVICE_DSSR_MAX_FOLLOWERS`` of them stream), and whether one follower more
than the bound is answered 503 with Retry-After.  Exit status 0 when all holds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster_session import on_cluster
from tests import cluster as testbed
from tests.slurm.cluster_support import serve, slurm_env
from tests.slurm_rest.test_backend_cluster import rest_env
from tests.v1client import V1


def measure(args: argparse.Namespace, cluster: testbed.Cluster, tmp: Path) -> int:
    extra = {"WAITRESS_THREADS": str(args.followers + 8), "JARVICE_DSSR_MAX_FOLLOWERS": str(args.followers)}
    env = (
        slurm_env(cluster, tmp, **extra)
        if args.interface == "cli"
        else rest_env(cluster, tmp, "v0.0.38", "true", **extra)
    )
    servers = serve(env)
    server = next(servers)
    try:
        reads = [0]
        original = server.downstream.connector.read_output

        def counted(*a: Any, **kw: Any) -> Any:
            reads[0] += 1
            return original(*a, **kw)

        server.downstream.connector.read_output = counted  # type: ignore[method-assign]  # counts the reads, then calls the connector's own
        token = cluster.idp.mint(email="kirby@example.com", user="kirby", audience="jarvice")
        api = V1(server.url, token)
        lines = int(args.seconds * 10)
        stamp = int(time.time())
        locations = [
            api.post(
                "/v1/jobs",
                {
                    "name": f"follow-{stamp}-{j}",
                    "exclusive": False,
                    "command": f"for i in $(seq 1 {lines}); do echo job{j}-$i; sleep 0.1; done",
                },
            ).headers["location"]
            for j in range(args.jobs)
        ]
        got: dict[int, bytes] = {}
        closed_at: dict[int, float] = {}

        def follow(index: int) -> None:
            got[index] = b"".join(api.stream(locations[index % args.jobs] + "/output?follow=true", timeout=600))
            closed_at[index] = time.monotonic()

        started = time.monotonic()
        threads = [threading.Thread(target=follow, args=(i,)) for i in range(args.followers)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        extra_one = api.get(locations[0] + "/output?follow=true")
        peak = threading.active_count()
        while any(t.is_alive() for t in threads):
            peak = max(peak, threading.active_count())
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        servers.close()
    ok = True
    for index in range(args.followers):
        want = [f"job{index % args.jobs}-{i}" for i in range(1, lines + 1)]
        text = got.get(index, b"").decode()
        if [line for line in text.splitlines() if line.startswith("job")] != want:
            print(f"follower {index}: {len(text.splitlines())} lines, not the {lines} of its job in order")
            ok = False
    busy = extra_one.status == 503 and "retry-after" in extra_one.headers
    ok = ok and busy and len(closed_at) == args.followers
    delivered = sum(len(b) for b in got.values())
    print(
        f"{args.followers} followers x {args.jobs} jobs, {elapsed:.1f} s: {delivered} bytes delivered, "
        f"every line once and in order: {ok}"
    )
    print(f"connector output reads: {reads[0]} ({reads[0] / max(elapsed, 1) / args.jobs:.2f} per job per second)")
    print(f"peak threads in this process (server pool + {args.followers} client threads): {peak}")
    print(f"follower {args.followers + 1}: {extra_one.status} (503 with Retry-After: {busy})")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interface", choices=("cli", "http"), default="cli")
    args = parser.parse_args()
    return on_cluster(lambda cluster, tmp: measure(args, cluster, tmp))


if __name__ == "__main__":
    sys.exit(main())
