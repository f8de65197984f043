"""Sharing calls to a scheduler between request threads (part of the batch-connector layer).

* :class:`SharedSnapshot`: one value (the ``squeue`` snapshot) reused for a
  short time; when it is stale, one caller refreshes it while the others wait
  for that refresh (and share its error, if it fails).
* :class:`Batcher`: look-ups by key (``sacct`` by job id) gathered from
  concurrent callers into one call.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Mapping, TypeVar

from . import metrics
from .checks import Contact

T = TypeVar("T")
V = TypeVar("V")


class SharedSnapshot(Generic[T]):
    """A value fetched at most once per ``ttl`` seconds, refreshed by one caller at a time.

    The fetch itself always runs in one thread of the snapshot's own, whichever
    request thread asked for it: a big queue's answer (slurmrestd sends about
    3 kB per job) is then parsed in one thread, so glibc does not grow one
    memory pool per request thread to the size of an answer and keep them all
    (measured over slurmrestd at 1,000 running jobs: benchmarks/poll_cycle.py).
    """

    def __init__(self, fetch: Callable[[], T], ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._clock = clock
        self._cond = threading.Condition()
        self._value: T | None = None
        self._started_at = float("-inf")
        self._invalid_after = float("-inf")
        self._refreshing = False
        self._generation = 0
        self._error: BaseException | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dssr-snapshot")
        #: the outcome of the latest fetch (None before the first one ends)
        self.last_contact: Contact | None = None

    def _fresh(self, now: float) -> bool:
        return (
            self._value is not None and self._started_at >= self._invalid_after and now - self._started_at <= self.ttl
        )

    def get(self) -> T:
        with self._cond:
            while True:
                if self._fresh(self._clock()):
                    assert self._value is not None
                    return self._value
                if not self._refreshing:
                    break
                generation = self._generation
                while self._refreshing and self._generation == generation:
                    self._cond.wait()
                if self._error is not None and self._generation == generation + 1:
                    raise self._error
                if self._value is not None and self._generation == generation + 1:
                    return self._value
            self._refreshing = True
            started = self._clock()
        try:
            # the caller's context goes along (its request id names the log lines of the fetch)
            value = self._worker.submit(contextvars.copy_context().run, self._fetch).result()
        except BaseException as exc:
            with self._cond:
                self._refreshing = False
                self._error = exc
                self._generation += 1
                self.last_contact = Contact(time.time(), False, str(exc) or exc.__class__.__name__)
                self._cond.notify_all()
            metrics.recorder().snapshot_refreshed(ok=False)
            raise
        metrics.recorder().snapshot_refreshed(ok=True)
        with self._cond:
            self._refreshing = False
            self._error = None
            self.last_contact = Contact(time.time(), True)
            self._value = value
            self._started_at = started
            self._generation += 1
            self._cond.notify_all()
        return value

    def invalidate(self) -> None:
        """The next :meth:`get` fetches anew (a refresh already running does not count)."""
        with self._cond:
            self._invalid_after = self._clock() + 1e-9


class _Round(Generic[V]):
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.done = threading.Event()
        self.results: dict[str, V] = {}
        self.error: BaseException | None = None


class Batcher(Generic[V]):
    """Gathers keys asked for by concurrent callers into one ``fetch(keys)`` call.

    While a call runs, new keys gather into the next round; the caller that
    found no call running runs rounds until none is left.
    """

    def __init__(self, fetch: Callable[[list[str]], Mapping[str, V]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._next: _Round[V] | None = None
        self._running = False

    def get(self, keys: Iterable[str]) -> dict[str, V]:
        """``fetch`` results for ``keys`` (keys ``fetch`` did not answer are absent)."""
        wanted = set(keys)
        with self._lock:
            if self._next is None:
                self._next = _Round()
            mine = self._next
            mine.keys |= wanted
            leader = not self._running
            self._running = True
        if leader:
            while True:
                with self._lock:
                    current = self._next
                    self._next = None
                    if current is None:
                        self._running = False
                        break
                try:
                    current.results = dict(self._fetch(sorted(current.keys)))
                except BaseException as exc:  # noqa: BLE001 - handed to every caller of this round
                    current.error = exc
                current.done.set()
        mine.done.wait()
        if mine.error is not None:
            raise mine.error
        return {k: mine.results[k] for k in wanted if k in mine.results}
