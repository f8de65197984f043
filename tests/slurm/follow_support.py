"""The streaming check of ``/v1`` (issue 22), shared by ``benchmarks/v1_follow.py`` (50 followers of 10 jobs
for 60 s) and ``tests/slurm/test_v1_cluster.py`` (the same check, smaller): run by both, so CI proves what
the benchmark measures.

N followers of J running jobs through ``GET /v1/jobs/{id}/output?follow=true`` on a live in-process server
(:class:`tests.slurm.cluster_support.Server`).  Each job prints a numbered line every 0.1 s; measured:

* every follower's lines of its job, which must be all of them, once and in order;
* that every stream closes once its job has ended, and that a follower of an ended job gets the whole
  output and a closed stream at once;
* that one follower more than ``JARVICE_DSSR_MAX_FOLLOWERS`` is answered 503 with Retry-After;
* the threads of the process other than the followers' own client threads (the server's: waitress's fixed
  pool, the snapshot's worker, paramiko's transports), sampled every 0.2 s: their peak must not exceed what
  the process had before the first follower (nothing starts a thread per follower);
* the SSH commands in flight at once on the connector's pool (each is one SSH channel, opened for the
  command and closed after it): every follower of a job reads one shared feed, one read at a time, so the
  peak is at most one per followed job, plus the queue snapshot and an accounting look-up;
* the connector's output reads, at most one per followed job per interval (whatever the followers).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.slurm.cluster_support import Server
from tests.v1client import V1

#: prefix of the followers' client threads (not counted as the server's)
CLIENT = "follower-"


@dataclass
class FollowReport:
    followers: int
    jobs: int
    seconds: float
    elapsed: float = 0.0
    #: follower index -> what it failed to receive (empty: every line once, in order)
    wrong: dict[int, str] = field(default_factory=dict)
    closed: int = 0
    delivered: int = 0
    busy_status: int = 0
    busy_retry_after: bool = False
    ended_follower_ok: bool = False
    ended_follower_seconds: float = 0.0
    threads_before: int = 0
    threads_peak: int = 0
    ssh_peak: int = 0
    ssh_bound: int = 0
    reads: int = 0
    reads_bound: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.wrong
            and self.closed == self.followers
            and self.busy_status == 503
            and self.busy_retry_after
            and self.ended_follower_ok
            and self.threads_peak <= self.threads_before
            and self.ssh_peak <= self.ssh_bound
            and self.reads <= self.reads_bound
        )

    def lines(self) -> list[str]:
        return [
            f"{self.followers} followers x {self.jobs} jobs, {self.seconds:.0f} s of output, {self.elapsed:.1f} s: "
            f"{self.delivered} bytes delivered; every line once and in order: {not self.wrong}; "
            f"streams closed at the end: {self.closed}/{self.followers}",
            f"follower of an ended job: whole output and closed stream: {self.ended_follower_ok} "
            f"({self.ended_follower_seconds:.2f} s)",
            f"follower {self.followers + 1}: {self.busy_status} (Retry-After: {self.busy_retry_after})",
            f"server threads (all but the {self.followers} client threads): {self.threads_before} before the "
            f"followers, peak {self.threads_peak} while they streamed",
            f"SSH commands (channels) in flight at once: peak {self.ssh_peak} (bound {self.ssh_bound}: one per "
            f"followed job + the snapshot + an accounting look-up)",
            f"connector output reads: {self.reads} (bound {self.reads_bound:.0f}: one per job per interval), "
            f"{self.reads / max(self.elapsed, 1) / self.jobs:.2f} per job per second",
        ] + [f"follower {i}: {what}" for i, what in sorted(self.wrong.items())[:10]]


def _counting(target: Any, name: str, on_call: Callable[[int], None]) -> Callable[[], None]:
    """Wrap ``target.name`` so that ``on_call(+1/-1)`` brackets every call; returns the undo."""
    original = getattr(target, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        on_call(1)
        try:
            return original(*args, **kwargs)
        finally:
            on_call(-1)

    setattr(target, name, counted)
    return lambda: setattr(target, name, original)


def follow_check(
    server: Server, api: V1, *, followers: int, jobs: int, seconds: float, interval: float, tag: str
) -> FollowReport:
    """Run the check (the server must allow exactly ``followers`` followers, and have threads for more
    requests besides them); returns what it measured, :attr:`FollowReport.ok` when every bound held."""
    report = FollowReport(followers, jobs, seconds)
    connector: Any = server.downstream.connector
    lock = threading.Lock()
    ssh = {"now": 0, "peak": 0}
    reads = [0]

    def on_ssh(delta: int) -> None:
        with lock:
            ssh["now"] += delta
            ssh["peak"] = max(ssh["peak"], ssh["now"])

    def on_read(delta: int) -> None:
        if delta > 0:
            with lock:
                reads[0] += 1

    undo = [_counting(connector.pool, "run", on_ssh), _counting(connector, "read_output", on_read)]
    try:
        _run(report, api, followers, jobs, seconds, tag, ssh)
    finally:
        for step in undo:
            step()
    report.ssh_peak, report.ssh_bound = ssh["peak"], jobs + 2
    report.reads = reads[0]
    report.reads_bound = jobs * (report.elapsed / interval + 2)
    return report


def _run(
    report: FollowReport, api: V1, followers: int, jobs: int, seconds: float, tag: str, ssh: dict[str, int]
) -> None:
    lines = int(seconds * 10)
    locations = []
    for j in range(jobs):
        reply = api.post(
            "/v1/jobs",
            {
                "name": f"{tag}-{j}",
                "exclusive": False,
                "command": f"for i in $(seq 1 {lines}); do echo job{j}-$i; sleep 0.1; done",
            },
        )
        assert reply.status == 201, reply.body
        locations.append(reply.headers["location"])
    got: dict[int, bytes] = {}
    closed: set[int] = set()

    def follow(index: int) -> None:
        pieces = []
        try:
            for piece in api.stream(locations[index % jobs] + "/output?follow=true", timeout=seconds + 300):
                pieces.append(piece)
            closed.add(index)
        finally:
            got[index] = b"".join(pieces)

    api.get(locations[0])  # every connection and worker the server needs exists before the first follower
    report.threads_before = _server_threads()
    ssh["peak"] = ssh["now"]
    started = time.monotonic()
    threads = [threading.Thread(target=follow, args=(i,), name=f"{CLIENT}{i}") for i in range(followers)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    extra = api.get(locations[0] + "/output?follow=true")
    report.busy_status, report.busy_retry_after = extra.status, "retry-after" in extra.headers
    peak = _server_threads()
    while any(t.is_alive() for t in threads) and time.monotonic() - started < seconds + 300:
        peak = max(peak, _server_threads())
        time.sleep(0.2)
    report.elapsed = time.monotonic() - started
    report.threads_peak = peak
    report.closed = len(closed)
    report.delivered = sum(len(b) for b in got.values())
    for index in range(followers):
        want = [f"job{index % jobs}-{i}" for i in range(1, lines + 1)]
        mine = [line for line in got.get(index, b"").decode().splitlines() if line.startswith("job")]
        if mine != want:
            report.wrong[index] = f"{len(mine)} lines of its job, not the {lines} in order (first {mine[:3]})"
    # the jobs have ended: a new follower gets the whole output, then the end, at once
    begin = time.monotonic()
    whole = b"".join(api.stream(locations[0] + "/output?follow=true", timeout=60)).decode()
    report.ended_follower_seconds = time.monotonic() - begin
    report.ended_follower_ok = [line for line in whole.splitlines() if line.startswith("job")] == [
        f"job0-{i}" for i in range(1, lines + 1)
    ]


def _server_threads() -> int:
    return sum(
        1 for t in threading.enumerate() if not t.name.startswith(CLIENT) and t is not threading.current_thread()
    )
