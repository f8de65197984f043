"""50 followers of 10 running jobs for 60 s through ``GET /v1/jobs/{id}/output?follow=true``, on the real
Slurm 22.05 test cluster over SSH (issue 22's streaming claim).

    python benchmarks/v1_follow.py [--followers 50] [--jobs 10] [--seconds 60] [--interval 1] [--interface cli|http]

The check is tests/slurm/follow_support.py's, which tests/slurm/test_v1_cluster.py also runs (12 followers
of 4 jobs for 10 s): every follower receives every line of its job once and in order; every stream closes
once its job has ended, and a follower of an ended job gets the whole output and a closed stream; one
follower more than ``JARVICE_DSSR_MAX_FOLLOWERS`` is answered 503 with Retry-After; the server's threads do
not grow while the followers stream (waitress's fixed pool of ``WAITRESS_THREADS``, here followers + 8, of
which each follower holds one); the SSH commands in flight at once (one channel each) stay at most one per
followed job plus two, because all followers of a job read one shared feed; the connector reads each job's
output at most once per interval.  Prints the figures; exit status 0 when every bound held.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster_session import on_cluster
from tests import cluster as testbed
from tests.slurm.cluster_support import serve, slurm_env
from tests.slurm.follow_support import follow_check
from tests.slurm_rest.test_backend_cluster import rest_env
from tests.v1client import V1


def measure(args: argparse.Namespace, cluster: testbed.Cluster, tmp: Path) -> int:
    extra = {
        "WAITRESS_THREADS": str(args.followers + 8),
        "JARVICE_DSSR_MAX_FOLLOWERS": str(args.followers),
        "JARVICE_DSSR_FOLLOW_INTERVAL": str(args.interval),
    }
    if args.interface == "cli":
        env = slurm_env(cluster, tmp, **extra)
    else:
        env = rest_env(cluster, tmp, "v0.0.38", "true", **extra)
    servers = serve(env)
    server = next(servers)
    try:
        token = cluster.idp.mint(email="kirby@example.com", user="kirby", audience="jarvice")
        report = follow_check(
            server,
            V1(server.url, token),
            followers=args.followers,
            jobs=args.jobs,
            seconds=args.seconds,
            interval=args.interval,
            tag=f"follow-{int(time.time())}",
        )
    finally:
        servers.close()
    print(f"Slurm 22.05, interface {args.interface}, follow interval {args.interval} s")
    print("\n".join(report.lines()))
    print(f"every bound held: {report.ok}")
    return 0 if report.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--interface", choices=("cli", "http"), default="cli")
    args = parser.parse_args()
    return on_cluster(lambda cluster, tmp: measure(args, cluster, tmp))


if __name__ == "__main__":
    sys.exit(main())
