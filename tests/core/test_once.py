"""submit_once: one job per name, whatever the interleaving of concurrent submitters.

The scheduler here is a stand-in (named as such): a job table with ids given in
increasing order and listings that are the table at one instant, the two
properties the proof in :func:`dssr_core.batch.submit_once` rests on.  A controller
runs the callers' scheduler calls one at a time in a random order, so that
every test explores many interleavings; the real-Slurm version of these tests
is tests/slurm/test_replicas_cluster.py.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Sequence

import pytest

from dssr_core import ClusterError
from dssr_core.batch import NamedJob, OnceAttempt, submit_once


@dataclass
class StandInJob:
    jobid: int
    name: str
    held: bool = True
    cancelled: bool = False


class StandInScheduler:
    """Ids in increasing order; every call is atomic; the controller decides whose call runs next."""

    def __init__(self, seed: int) -> None:
        self.jobs: dict[int, StandInJob] = {}
        self.next_id = 100
        self.rng = random.Random(seed)
        self.cond = threading.Condition()
        self.parked: set[str] = set()
        self.turn: str | None = None

    def step(self, who: str) -> None:
        """Park ``who`` until the controller gives it the turn."""
        with self.cond:
            self.parked.add(who)
            self.cond.notify_all()
            while self.turn != who:
                self.cond.wait()
            self.turn = None
            self.parked.discard(who)

    def run(self, callers: dict[str, threading.Thread]) -> None:
        for thread in callers.values():
            thread.start()
        while True:
            with self.cond:
                while True:
                    alive = {name for name, t in callers.items() if t.is_alive()}
                    if self.turn is None and alive and alive <= self.parked:
                        break
                    if not alive:
                        return
                    self.cond.wait(0.01)
                self.turn = self.rng.choice(sorted(self.parked))
                self.cond.notify_all()


class StandInAttempt(OnceAttempt):
    def __init__(self, sched: StandInScheduler, who: str, name: str = "jarvice_a", die_after: str | None = None):
        self.sched, self.who, self.name, self.die_after = sched, who, name, die_after

    def _stop(self, step: str) -> None:
        if self.die_after == step:
            raise SystemExit(f"{self.who} killed after {step}")

    def find(self) -> list[NamedJob]:
        self.sched.step(self.who)
        return [
            NamedJob(str(j.jobid), held=j.held and not j.cancelled, finished=j.cancelled)
            for j in self.sched.jobs.values()
            if j.name == self.name
        ]

    def submit_held(self) -> str:
        self.sched.step(self.who)
        jobid = self.sched.next_id
        self.sched.next_id += 1
        self.sched.jobs[jobid] = StandInJob(jobid, self.name)
        self._stop("submit")
        return str(jobid)

    def cancel(self, jobids: Sequence[str]) -> None:
        for jobid in jobids:
            self.sched.step(self.who)
            self.sched.jobs[int(jobid)].cancelled = True

    def release(self, jobid: str) -> None:
        self.sched.step(self.who)
        job = self.sched.jobs[int(jobid)]
        assert not job.cancelled, "a cancelled job was released"
        job.held = False


def race(
    seed: int, callers: int, keep_held: bool = False, die: dict[str, str] | None = None
) -> tuple[StandInScheduler, dict[str, tuple[str, bool] | BaseException]]:
    sched = StandInScheduler(seed)
    answers: dict[str, tuple[str, bool] | BaseException] = {}

    def caller(who: str) -> None:
        try:
            answers[who] = submit_once(StandInAttempt(sched, who, die_after=(die or {}).get(who)), keep_held=keep_held)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to judge
            answers[who] = exc

    threads = {f"r{i}": threading.Thread(target=caller, args=(f"r{i}",)) for i in range(callers)}
    sched.run(threads)
    return sched, answers


@pytest.mark.parametrize("seed", range(60))
def test_concurrent_submitters_agree_on_one_job_and_only_it_may_run(seed: int) -> None:
    sched, answers = race(seed, callers=2 + seed % 4)
    ids = {a[0] for a in answers.values() if isinstance(a, tuple)}
    assert len(answers) == 2 + seed % 4 and len(ids) == 1, answers
    winner = int(ids.pop())
    assert winner == min(sched.jobs)
    assert not sched.jobs[winner].held and not sched.jobs[winner].cancelled
    assert all(j.cancelled for j in sched.jobs.values() if j.jobid != winner)
    assert sum(1 for a in answers.values() if isinstance(a, tuple) and not a[1]) == 1  # one caller submitted it


@pytest.mark.parametrize("seed", range(20))
def test_a_job_asked_held_stays_held_and_only_once(seed: int) -> None:
    sched, answers = race(seed, callers=3, keep_held=True)
    ids = {a[0] for a in answers.values() if isinstance(a, tuple)}
    assert len(ids) == 1
    live = [j for j in sched.jobs.values() if not j.cancelled]
    assert [j.jobid for j in live] == [int(ids.pop())] and live[0].held


@pytest.mark.parametrize("seed", range(40))
def test_a_submitter_killed_half_way_leaves_nothing_running_and_a_retry_settles_it(seed: int) -> None:
    sched, answers = race(seed, callers=3, die={"r0": "submit"})
    ids = {a[0] for a in answers.values() if isinstance(a, tuple)}
    assert len(ids) == 1  # r0 is killed if it submitted; if it found the job first, it answered it too
    winner = int(ids.pop())
    running = [j.jobid for j in sched.jobs.values() if not j.held and not j.cancelled]
    assert running == [winner]
    # the upstream retries: the same answer, and no held duplicate is left behind
    sched.rng = random.Random(seed)
    threads = {
        "retry": threading.Thread(
            target=lambda: answers.__setitem__("retry", submit_once(StandInAttempt(sched, "retry")))
        )
    }
    sched.run(threads)
    assert answers["retry"] == (str(winner), True)
    assert [j.jobid for j in sched.jobs.values() if not j.cancelled] == [winner]


def test_the_only_submitter_killed_leaves_a_held_job_that_the_retry_releases() -> None:
    sched, answers = race(0, callers=1, die={"r0": "submit"})
    assert isinstance(answers["r0"], SystemExit)
    (job,) = sched.jobs.values()
    assert job.held
    threads = {
        "retry": threading.Thread(
            target=lambda: answers.__setitem__("retry", submit_once(StandInAttempt(sched, "retry")))
        )
    }
    sched.run(threads)
    assert answers["retry"] == (str(job.jobid), True) and not job.held


def test_a_job_the_scheduler_does_not_list_after_submission_is_cancelled_and_reported() -> None:
    class Blind(StandInAttempt):
        def find(self) -> list[NamedJob]:
            self.sched.step(self.who)
            return []

    sched = StandInScheduler(0)
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            submit_once(Blind(sched, "r0"))
        except ClusterError as exc:
            errors.append(exc)

    sched.run({"r0": threading.Thread(target=caller)})
    assert errors and "does not list it" in str(errors[0])
    assert all(j.cancelled for j in sched.jobs.values())
