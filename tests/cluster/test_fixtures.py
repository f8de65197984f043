"""The cluster fixtures' lock discipline, with stand-in clusters (no daemons needed).

A session that reuses a cluster must wait for another session's bring-up or
teardown before it reads the cluster's state: otherwise it reads a half-written
state, or a cluster that is about to go away.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster import fixtures, packages


class _RecordingLock:
    def __init__(self, events: list[str], shared: bool) -> None:
        self.events, self.kind = events, "shared" if shared else "exclusive"

    def __enter__(self) -> "_RecordingLock":
        self.events.append(f"lock {self.kind}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.events.append(f"unlock {self.kind}")


def _run(monkeypatch: pytest.MonkeyPatch, *, up_already: bool) -> list[str]:
    events: list[str] = []
    monkeypatch.setenv("DSSR_CLUSTER_REUSE", "1")
    monkeypatch.setattr(packages, "preflight", lambda: None)
    guard = fixtures._Guard(lambda shared: _RecordingLock(events, shared))  # type: ignore[arg-type,return-value]  # a recording stand-in for the session lock
    state = {"up": up_already}

    def alive() -> bool:
        events.append("alive?")
        return state["up"]

    def load() -> Any:
        events.append("load")
        return "cluster"

    def up() -> Any:
        events.append("up")
        state["up"] = True
        return "cluster"

    def down() -> None:
        events.append("down")

    session = fixtures._own_cluster(guard, "test cluster", load, alive, up, down, lambda: "logs")
    assert next(session) == "cluster"
    with pytest.raises(StopIteration):
        next(session)
    return events


def test_reusing_a_live_cluster_takes_the_shared_lock_before_reading_its_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _run(monkeypatch, up_already=True) == ["lock shared", "alive?", "load", "unlock shared"]


def test_reuse_with_no_cluster_up_brings_one_up_under_the_exclusive_lock_and_leaves_it_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Leaving it up is what keeps a second reusing session, started meanwhile, on a live cluster.
    assert _run(monkeypatch, up_already=False) == [
        "lock shared",
        "alive?",
        "unlock shared",
        "lock exclusive",
        "up",
        "unlock exclusive",
    ]
