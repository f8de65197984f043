"""One squeue serves every concurrent caller; sacct look-ups of concurrent callers are batched."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from dssr_core import ClusterError
from dssr_core.batch._sharing import Batcher, SharedSnapshot


def test_snapshot_is_reused_within_its_ttl_and_refreshed_after() -> None:
    now = [0.0]
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        return len(calls)

    snap = SharedSnapshot(fetch, ttl=2.0, clock=lambda: now[0])
    assert snap.get() == 1 and snap.get() == 1
    now[0] = 2.5
    assert snap.get() == 2


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_next_refresh_starts_shortly_before_expiry_and_no_caller_waits_for_it() -> None:
    now = [0.0]
    gate = threading.Event()
    gate.set()
    calls: list[float] = []

    def fetch() -> int:
        calls.append(now[0])
        now[0] += 0.1  # each fetch takes 0.1 s: the next one starts 0.15 s before expiry
        assert gate.wait(5)
        return len(calls)

    snap = SharedSnapshot(fetch, ttl=2.0, clock=lambda: now[0])
    assert snap.get() == 1
    now[0] = 1.9  # 1.8 s after the fetch ended
    assert snap.get() == 1 and calls == [0.0]
    gate.clear()  # the next fetch hangs until told
    now[0] = 2.0
    assert snap.get() == 1  # answered from the current value while the next fetch runs
    wait_until(lambda: len(calls) == 2)
    assert snap.get() == 1  # still within the ttl (the clock is at 2.1): nobody waits
    gate.set()
    wait_until(lambda: snap.get() == 2)
    assert calls == [0.0, 2.0]


def test_after_a_failed_early_refresh_the_next_one_waits_for_expiry() -> None:
    now = [0.0]
    outcomes: list[int | Exception] = [1, ClusterError("down"), 3]

    def fetch() -> int:
        now[0] += 0.1
        value = outcomes.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    snap = SharedSnapshot(fetch, ttl=2.0, clock=lambda: now[0])
    assert snap.get() == 1
    now[0] = 2.0
    assert snap.get() == 1  # starts the early refresh, which fails
    wait_until(lambda: snap.last_contact is not None and not snap.last_contact.ok)
    now[0] = 2.05
    assert snap.get() == 1
    time.sleep(0.3)  # time for a fetch that should not start
    assert outcomes == [3]  # a failing scheduler is not asked again before expiry
    now[0] = 2.5
    assert snap.get() == 3


def test_concurrent_callers_share_one_refresh() -> None:
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    snap = SharedSnapshot(fetch, ttl=5.0)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(snap.get())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 16 and len(calls) == 1


def test_a_failed_refresh_is_an_error_for_its_callers_and_is_not_kept() -> None:
    outcomes: list[ClusterError | int] = [ClusterError("down"), 7]

    def fetch() -> int:
        value = outcomes.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    snap = SharedSnapshot(fetch, ttl=5.0)
    with pytest.raises(ClusterError):
        snap.get()
    assert snap.get() == 7


def test_invalidate_forces_the_next_refresh() -> None:
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        return len(calls)

    snap = SharedSnapshot(fetch, ttl=60.0)
    snap.get()
    snap.invalidate()
    assert snap.get() == 2


def test_concurrent_lookups_are_gathered_into_few_calls() -> None:
    batches: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, str]:
        batches.append(keys)
        time.sleep(0.1)
        return {k: k.upper() for k in keys if k != "missing"}

    batcher = Batcher(fetch)
    results: dict[str, dict[str, str]] = {}
    keys = [f"k{i}" for i in range(20)] + ["missing"]
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, batcher.get([k]))) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["k3"] == {"k3": "K3"} and results["missing"] == {}
    assert len(batches) <= 3 and sum(len(b) for b in batches) == len(keys)


def test_a_failed_lookup_is_an_error_for_every_caller_of_that_batch() -> None:
    batcher: Batcher[str] = Batcher(lambda keys: (_ for _ in ()).throw(ClusterError("sacct down")))
    with pytest.raises(ClusterError):
        batcher.get(["1"])


def test_every_refresh_runs_in_the_snapshots_own_thread_with_the_callers_context() -> None:
    # One thread parses every queue answer, so a big answer does not grow a memory pool in
    # each request thread; the asking request's context (its request id) goes along.
    import contextvars

    request = contextvars.ContextVar("request", default="-")
    seen: list[tuple[int, str]] = []

    def fetch() -> int:
        seen.append((threading.get_ident(), request.get()))
        return len(seen)

    snap = SharedSnapshot(fetch, ttl=0.0)
    callers: list[int] = []

    def ask(name: str) -> None:
        request.set(name)
        callers.append(threading.get_ident())
        snap.get()

    for i in range(4):
        t = threading.Thread(target=ask, args=(f"r{i}",))
        t.start()
        t.join()
    assert len(seen) == 4 and len({ident for ident, _ in seen}) == 1
    assert seen[0][0] not in callers and [name for _, name in seen] == ["r0", "r1", "r2", "r3"]


def test_after_each_fetch_the_freed_memory_is_handed_back_to_the_system(monkeypatch: pytest.MonkeyPatch) -> None:
    # glibc keeps the memory of a parsed and dropped queue answer; the snapshot trims the heap after
    # each fetch (over slurmrestd at 1,000 jobs: 86-88 MB without, 68-69 MB with; poll_cycle.py --scale)
    import platform

    from dssr_core.batch import _sharing as sharing

    if platform.libc_ver()[0] == "glibc":
        assert sharing._malloc_trim is not None
    trims: list[int] = []

    def trim(pad: int) -> int:
        trims.append(pad)
        return 1

    monkeypatch.setattr(sharing, "_malloc_trim", trim)
    now = [0.0]
    snap = SharedSnapshot(lambda: len(trims), ttl=2.0, clock=lambda: now[0])
    snap.get()
    now[0] = 5.0
    snap.get()
    wait_until(lambda: len(trims) >= 2)  # the trim follows the answer, in the snapshot's thread
    time.sleep(0.05)
    assert trims == [0, 0]
