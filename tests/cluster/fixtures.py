"""pytest plugin: the real Slurm test cluster as session fixtures.

Load with ``pytest_plugins = ["tests.cluster.fixtures"]``. Fixtures:

* ``slurm_cluster``     -> ``tests.cluster.Cluster`` (Slurm 22.05, two nodes, sshd, slurmrestd)
* ``slurm2411_cluster`` -> ``Cluster`` for Slurm 24.11 (chroot), started only when a test asks for it
* ``gridengine_cluster`` -> ``tests.cluster.gridengine.GECluster`` (Grid Engine 8.1.9: qmaster, two execd
  in namespaces, sshd), independent of the Slurm ones (own lock, network, state, ledger)
* ``slurm2605_cluster`` -> ``Cluster`` for Slurm 26.05 with the real Apptainer and an OCI registry
  (Debian sid root, tests/cluster/slurm2605.py), started only when a test asks for it; independent of
  the other two (own lock, network, state), so it can be up beside them

and ``require_debian_root(*packages)`` for tests of the same tier that need no cluster.

Without root or the Debian packages every cluster test is skipped with one line
saying why; with ``CI=true`` that is a failure instead. ``DSSR_CLUSTER_REUSE=1``
uses a cluster left up by ``python -m tests.cluster up`` and leaves it up.
See docs/test-cluster.md.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from typing import Any, Callable, Iterator

import pytest

from tests.cluster import gridengine, packages, slurm, slurm2411, slurm2605
from tests.cluster.base import HarnessError, log
from tests.cluster.gridengine import GECluster
from tests.cluster.locks import SessionLock
from tests.cluster.model import Cluster

__all__ = [
    "slurm_cluster",
    "slurm2411_cluster",
    "slurm2605_cluster",
    "gridengine_cluster",
    "Cluster",
    "GECluster",
    "require_debian_root",
]


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _reuse() -> bool:
    return os.environ.get("DSSR_CLUSTER_REUSE") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs the real Slurm test cluster (root, Debian packages); see docs/test-cluster.md"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Point every "cluster tier:" skip at this file, so `-ra` folds them into ONE line."""
    rep: Any = yield
    if rep.skipped and isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
        reason = str(rep.longrepr[2])
        if reason.startswith("Skipped: cluster tier:") or reason.startswith("cluster tier:"):
            rep.longrepr = (__file__, _SKIP_LINE, reason)
    return rep


_SKIP_LINE = 1


class _Guard:
    """Runs the teardown once: from the fixture finalizer, at exit, or on SIGTERM/SIGHUP."""

    def __init__(self, lock: Callable[[bool], SessionLock] = lambda shared: slurm.session_lock(shared=shared)) -> None:
        self._make_lock = lock
        self._steps: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._old: dict[int, object] = {}
        self._session_lock: SessionLock | None = None
        atexit.register(self.run)

    def arm(self, step: Callable[[], object]) -> None:
        with self._lock:
            self._steps.append(step)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if sig not in self._old:
                    self._old[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        # Unwind pytest like Ctrl-C does, so session finalizers (and so teardown) run.
        raise KeyboardInterrupt(f"signal {signum}")

    def hold_session_lock(self, shared: bool = False) -> None:
        if self._session_lock is None:
            self._session_lock = self._make_lock(shared).__enter__()

    def run(self) -> None:
        with self._lock:
            steps, self._steps = self._steps[::-1], []
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - teardown must go on whatever one step raised
                log(f"teardown step failed: {e}")
        if self._session_lock is not None:
            self._session_lock.__exit__(None, None, None)
            self._session_lock = None
        if threading.current_thread() is threading.main_thread():
            for sig, old in self._old.items():
                signal.signal(sig, old)  # type: ignore[arg-type]  # signal.signal returned it, so it is a handler signal.signal takes back
            self._old.clear()


_guard = _Guard()
_guard_2605 = _Guard(lambda shared: slurm2605.session_lock(shared=shared))
_guard_ge = _Guard(lambda shared: gridengine.session_lock(shared=shared))


def _unavailable(reason: str) -> None:
    msg = f"cluster tier: {reason}"
    if _ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def require_debian_root(*needed: str) -> float:
    """This tier's rule for tests that need root and Debian ``packages`` but no cluster (container
    image, nginx) from Debian ``needed``: skipped with the tier's one line elsewhere, a failure with ``CI=true``. Installs
    what is missing; returns the seconds that took."""
    why = packages.preflight(needed)
    if why:
        _unavailable(why)
    try:
        return packages.ensure_packages(needed)
    except HarnessError as e:
        _unavailable(_first_line(e))
        raise  # not reached: _unavailable skips or fails


def _own_cluster(
    guard: _Guard,
    label: str,
    load: Callable[[], Any],
    alive: Callable[[], bool],
    up: Callable[[], Any],
    down: Callable[[], object],
    save_logs: Callable[[], object],
    needed: list[str] | None = None,
) -> Iterator[Any]:
    """A cluster with a lock of its own: reused (lock shared) when asked and alive, else brought up by this
    session (lock exclusive). A session that reuses leaves what it brought up running, so that
    several reusing sessions never tear down a cluster another one is using; otherwise it is torn
    down at session end."""
    why = packages.preflight() if needed is None else packages.preflight(needed)
    if why:
        _unavailable(why)
    if _reuse():
        # The shared lock first: it waits out another session's bring-up or teardown, so the state
        # read next is the cluster's final one, and no other session may take it down meanwhile.
        guard.hold_session_lock(shared=True)
        if alive():
            cluster = load()
            assert cluster is not None
            guard.arm(lambda: None)
            yield cluster
            guard.run()
            return
        guard.run()  # not up: let go of the shared lock and bring one up under the exclusive one
    try:
        guard.hold_session_lock()
        guard.arm((lambda: None) if _reuse() else down)
        cluster = up()
    except Exception as e:
        keep = save_logs()
        guard.run()
        if _ci():
            raise
        pytest.skip(f"cluster tier: the {label} did not start: {_first_line(e)} (logs: {keep})")
    yield cluster
    guard.run()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    """The Slurm 22.05 cluster (see tests/cluster/model.py for the fields)."""
    yield from _own_cluster(
        _guard,
        "Slurm test cluster",
        lambda: slurm.load("slurm-22.05"),
        lambda: slurm.alive("slurm-22.05"),
        lambda: slurm.up(with_2411=False),
        slurm.down,
        slurm.save_logs,
    )


@pytest.fixture(scope="session")
def slurm2411_cluster(slurm_cluster: Cluster) -> Iterator[Cluster]:
    """The Slurm 24.11 cluster (Debian 13 chroot); brought up on first use."""
    if _reuse() and slurm.alive("slurm-24.11"):
        cluster = slurm.load("slurm-24.11")
        assert cluster is not None
        yield cluster
        return
    try:
        if not _reuse():
            _guard.arm(slurm2411.down_2411)
        cluster = slurm2411.up_2411(slurm_cluster)
    except Exception as e:
        keep = slurm.save_logs()
        slurm2411.down_2411()
        if _ci():
            raise
        pytest.skip(f"cluster tier: the Slurm 24.11 cluster did not start: {_first_line(e)} (logs: {keep})")
    yield cluster
    # torn down with the session (the guard runs down_2411 before down); in reuse mode it stays up


@pytest.fixture(scope="session")
def slurm2605_cluster() -> Iterator[Cluster]:
    """The Slurm 26.05 cluster with the real Apptainer (Debian sid root); brought up on first use."""
    yield from _own_cluster(
        _guard_2605,
        "Slurm 26.05 cluster",
        slurm2605.load,
        slurm2605.alive,
        slurm2605.up,
        slurm2605.down,
        slurm2605.save_logs,
    )


@pytest.fixture(scope="session")
def gridengine_cluster() -> Iterator[GECluster]:
    """The Grid Engine 8.1.9 cluster (tests/cluster/gridengine.py); brought up on first use (about 2 s)."""
    yield from _own_cluster(
        _guard_ge,
        "Grid Engine cluster",
        gridengine.load,
        gridengine.alive,
        gridengine.up,
        gridengine.down,
        gridengine.save_logs,
        needed=gridengine.PACKAGES,
    )
