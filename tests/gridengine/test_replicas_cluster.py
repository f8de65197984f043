"""Two dssr-server replicas behind one upstream, on the real Grid Engine cluster: each job once, both answer its id.

The Slurm replica test's scenario (tests/slurm/test_replicas_cluster.py) on Grid Engine: the same
``/submit`` to two real ``dssr-server`` processes at the same moment, for 8 names; then one replica
killed (SIGKILL) mid-submission, restarted, and the upstream's retries sent to both.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest

from dssr_core.testing.contract import unique_name
from dssr_gridengine.parsing import parse_qstat
from tests.cluster.gridengine import GECluster
from tests.gridengine.support import ge_env
from tests.slurm.test_replicas_cluster import NAMES, Replica, args_for, at_once

pytestmark = pytest.mark.cluster


@pytest.fixture
def replicas(
    gridengine_cluster: GECluster, tmp_path: Path
) -> Iterator[tuple[GECluster, list[Replica], str, list[str]]]:
    env = ge_env(gridengine_cluster, tmp_path)
    pair = [Replica(env, tmp_path / f"replica-{i}.log").start() for i in range(2)]
    user = gridengine_cluster.users["kirby"]
    names = [unique_name("twin") for _ in range(NAMES)]
    yield gridengine_cluster, pair, gridengine_cluster.idp.mint(email=user.email, user=user.name, lifespan=1800), names
    for replica in pair:
        replica.stop()
    gridengine_cluster.run(["qdel", "-u", "kirby"], user="root", check=False)


def ge_jobs(cluster: GECluster, name: str) -> list[tuple[str, str]]:
    """(id, state letters) of every job of that name in the qmaster."""
    text = cluster.run("date '+%Y-%m-%dT%H:%M:%S' && qstat -xml -u '*' -g t", user="root").stdout
    return [(job.jobid, job.state) for job in parse_qstat(text) if job.name == f"jarvice_{name}"]


def ran(cluster: GECluster, name: str, but: str) -> list[str]:
    """Ids of jobs of that name, other than ``but``, that ran: only a job that started has an accounting record."""
    lines = cluster.accounting_file.read_text().splitlines()
    return [
        f.split(":")[5]
        for f in lines
        if f.count(":") >= 44 and f.split(":")[4] == f"jarvice_{name}" and f.split(":")[5] != but
    ]


def test_the_same_submission_to_two_replicas_at_once_is_one_job_and_both_answer_its_id(
    replicas: tuple[GECluster, list[Replica], str, list[str]],
) -> None:
    cluster, (a, b), token, names = replicas
    answers = at_once([(r, args_for(n, token)) for n in names for r in (a, b)])
    assert all(status == 200 for status, _ in answers), answers
    ids = {name: answers[2 * i][1][0] for i, name in enumerate(names)}
    for replica in (a, b):
        status, queued = replica.call("GET", "/queued")
        status2, running = replica.call("GET", "/running")
        assert status == status2 == 200
        listed = [pair for pair in queued + running if pair[0] in ids]
        assert sorted(listed) == sorted([n, i] for n, i in ids.items()), listed
    for i, name in enumerate(names):
        first, second = answers[2 * i], answers[2 * i + 1]
        assert first[1][0] == second[1][0], (name, first, second)
        # a duplicate is deleted while held: it leaves the qmaster at once and never runs
        assert [jobid for jobid, _ in ge_jobs(cluster, name)] == [first[1][0]], ge_jobs(cluster, name)
        assert ran(cluster, name, first[1][0]) == []


def test_a_replica_killed_mid_submit_then_restarted_leaves_one_job_per_name(
    replicas: tuple[GECluster, list[Replica], str, list[str]],
) -> None:
    cluster, (a, b), token, names = replicas
    killer = threading.Timer(0.15, a.kill)
    killer.start()
    first = at_once([(r, args_for(n, token)) for n in names for r in (a, b)])
    killer.join()
    assert all(status in (0, 200) for status, _ in first), first  # a refused or cut request, never a 5xx
    assert any(status == 0 for status, _ in first[0::2]), "the kill landed after every submission had ended"
    a.start()
    again = at_once([(r, args_for(n, token)) for n in names for r in (a, b)])
    for i, name in enumerate(names):
        ra, rb = again[2 * i], again[2 * i + 1]
        assert ra[0] == 200 and rb[0] == 200 and ra[1][0] == rb[1][0], (name, ra, rb)
        earlier = [body[0] for status, body in first[2 * i : 2 * i + 2] if status == 200]
        assert all(jobid == ra[1][0] for jobid in earlier), (name, earlier, ra)
        jobs = ge_jobs(cluster, name)
        assert [jobid for jobid, _ in jobs] == [ra[1][0]], jobs
        assert "h" not in jobs[0][1], jobs  # released: not left held by the killed replica
        assert ran(cluster, name, ra[1][0]) == []
