"""Two dssr-server replicas behind one upstream, on one real cluster: each job once, both answer its id.

Two real ``dssr-server`` processes with the same settings; the same ``/submit``
goes to both at the same moment, for many names; over SSH (22.05, 26.05) and
over slurmrestd (22.05 v0.0.38 and 26.05 v0.0.45 through SSH; 24.11 v0.0.42
direct, no SSH in the submit path).  Then one replica is killed (SIGKILL) in the middle of
submissions and restarted, and the upstream's retries go to both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core.testing.contract import unique_name
from tests.cluster import Cluster
from tests.helpers import legacy_template, submit_args
from tests.server.live import free_port
from tests.slurm.cluster_support import slurm_env
from tests.slurm_rest.test_backend_cluster import rest_env

pytestmark = pytest.mark.cluster

NAMES = 8
CASES = [
    pytest.param(("slurm_cluster", None), id="22.05-ssh"),
    pytest.param(("slurm_cluster", ("v0.0.38", "true")), id="22.05-rest-v0.0.38"),
    pytest.param(("slurm2411_cluster", ("v0.0.42", "false")), id="24.11-rest-v0.0.42-direct"),
    pytest.param(("slurm2605_cluster", None), id="26.05-ssh"),
    pytest.param(("slurm2605_cluster", ("v0.0.45", "true")), id="26.05-rest-v0.0.45"),
]


class Replica:
    """One ``dssr-server`` process (connector slurm, executor shell) on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log_path = env, log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Replica":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dssr_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--threads",
                    "16",
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if self.call("GET", "/live")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica did not start: {self.log_path.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def call(self, method: str, path: str, args: Any = None, timeout: float = 90) -> tuple[int, Any]:
        data = None if args is None else urllib.parse.urlencode({"args": json.dumps(args)}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, body = err.code, err.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")


@pytest.fixture(params=CASES)
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cluster, list[Replica], str, list[str]]]:
    fixture, rest = request.param
    cluster: Cluster = request.getfixturevalue(fixture)
    env = slurm_env(cluster, tmp_path) if rest is None else rest_env(cluster, tmp_path, *rest)
    pair = [Replica(env, tmp_path / f"replica-{i}.log").start() for i in range(2)]
    user = cluster.users["kirby"]
    names = [unique_name("twin") for _ in range(NAMES)]
    yield cluster, pair, cluster.idp.mint(email=user.email, user=user.name, lifespan=1800), names
    for replica in pair:
        replica.stop()
    cluster.run(["scancel", "-n", ",".join(f"jarvice_{name}" for name in names)], user="root", check=False)


def args_for(name: str, token: str) -> dict[str, Any]:
    template = legacy_template("sleep 30; echo done", extra={"JOBOBJ_DEVICES": '["exclusive=False"]'})
    return submit_args(name, 7, template, key="shell", bearer=token)


def at_once(
    calls: list[tuple[Replica, dict[str, Any]]], answered: threading.Event | None = None
) -> list[tuple[int, Any]]:
    """POST every ``/submit`` at the same moment (a barrier), answers in order; a refused connection is (0, ...).
    ``answered`` is set when the first answer has come back."""
    answers: list[tuple[int, Any]] = [(0, None)] * len(calls)
    barrier = threading.Barrier(len(calls))

    def post(i: int, replica: Replica, args: dict[str, Any]) -> None:
        barrier.wait()
        try:
            answers[i] = replica.call("POST", "/submit", args)
        except OSError as exc:  # the replica was killed under this request
            answers[i] = (0, str(exc))
        if answered is not None:
            answered.set()

    threads = [threading.Thread(target=post, args=(i, r, a)) for i, (r, a) in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def slurm_jobs(cluster: Cluster, name: str) -> list[tuple[str, str]]:
    """(id, state) of every job of that name slurmctld holds (as root: PrivateData hides nothing)."""
    out = cluster.run(["squeue", "-h", "-t", "all", "-n", f"jarvice_{name}", "-o", "%i %T"], user="root").stdout
    return [(i, s) for i, s in (line.split() for line in out.splitlines() if line.strip())]


def live_jobs(cluster: Cluster, name: str) -> list[str]:
    return [i for i, state in slurm_jobs(cluster, name) if state != "CANCELLED"]


def never_ran(cluster: Cluster, jobid: str) -> bool:
    """Cancelled while still held: never given a node."""
    out = cluster.run(["squeue", "-h", "-t", "all", "-j", jobid, "-o", "%T|%N|%r"], user="root", check=False).stdout
    return out.strip() == "CANCELLED||JobHeldUser"


def test_the_same_submission_to_two_replicas_at_once_is_one_job_and_both_answer_its_id(
    replicas: tuple[Cluster, list[Replica], str, list[str]],
) -> None:
    cluster, (a, b), token, names = replicas
    answers = at_once([(r, args_for(n, token)) for n in names for r in (a, b)])
    assert all(status == 200 for status, _ in answers), answers
    ids = {name: answers[2 * i][1][0] for i, name in enumerate(names)}
    # both replicas list each job once, under the id they answered
    for replica in (a, b):
        status, queued = replica.call("GET", "/queued")
        status2, running = replica.call("GET", "/running")
        assert status == status2 == 200
        listed = [pair for pair in queued + running if pair[0] in ids]
        assert sorted(listed) == sorted([n, i] for n, i in ids.items()), listed
    for i, name in enumerate(names):
        first, second = answers[2 * i], answers[2 * i + 1]
        assert first[1][0] == second[1][0], (name, first, second)
        assert live_jobs(cluster, name) == [first[1][0]], slurm_jobs(cluster, name)
        duplicates = [i for i, _ in slurm_jobs(cluster, name) if i != first[1][0]]
        assert all(never_ran(cluster, jobid) for jobid in duplicates), duplicates


def test_a_replica_killed_mid_submit_then_restarted_leaves_one_job_per_name(
    replicas: tuple[Cluster, list[Replica], str, list[str]],
) -> None:
    cluster, (a, b), token, names = replicas
    # killed 0.15 s in, or as soon as the first submission is answered (the others are then under way)
    answered = threading.Event()

    def kill_a() -> None:
        answered.wait(0.15)
        a.kill()

    killer = threading.Thread(target=kill_a)
    killer.start()
    first = at_once([(r, args_for(n, token)) for n in names for r in (a, b)], answered)
    killer.join()
    assert all(status in (0, 200) for status, _ in first), first  # a refused or cut request, never a 5xx
    assert any(status == 0 for status, _ in first[0::2]), "the kill landed after every submission had ended"
    a.start()
    # the upstream retries each name on both replicas
    again = at_once([(r, args_for(n, token)) for n in names for r in (a, b)])
    for i, name in enumerate(names):
        ra, rb = again[2 * i], again[2 * i + 1]
        assert ra[0] == 200 and rb[0] == 200 and ra[1][0] == rb[1][0], (name, ra, rb)
        earlier = [body[0] for status, body in first[2 * i : 2 * i + 2] if status == 200]
        assert all(jobid == ra[1][0] for jobid in earlier), (name, earlier, ra)
        assert live_jobs(cluster, name) == [ra[1][0]], slurm_jobs(cluster, name)
        state = dict(slurm_jobs(cluster, name))[ra[1][0]]
        assert state != "PENDING" or "JobHeldUser" not in _reason(cluster, ra[1][0])


def _reason(cluster: Cluster, jobid: str) -> str:
    return cluster.run(["squeue", "-h", "-j", jobid, "-o", "%r"], user="root", check=False).stdout.strip()
