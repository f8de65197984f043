"""Sharing calls to a scheduler between request threads (part of the batch-connector layer).

* :class:`SharedSnapshot`: one value (the ``squeue`` snapshot) reused for a
  short time and refreshed by one fetch at a time, started shortly before it
  expires so that steady polling never waits for the scheduler.
* :class:`Batcher`: look-ups by key (``sacct`` by job id) gathered from
  concurrent callers into one call.
"""

from __future__ import annotations

import contextvars
import ctypes
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Mapping, TypeVar

from .. import metrics
from .._checks import Contact

T = TypeVar("T")
V = TypeVar("V")


#: a refresh starts ahead of expiry by this many times the latest fetch's duration (at most half the ttl)
AHEAD = 1.5


class SharedSnapshot(Generic[T]):
    """A value fetched at most once per ``ttl`` seconds, refreshed by one caller at a time.

    A value is served for ``ttl`` seconds after its fetch ended.  When a
    caller finds it that old but for :data:`AHEAD` times the latest fetch's
    duration, the next fetch starts in the background and the caller is
    answered from the current value: under steady polling no caller waits for
    the scheduler, which is asked once per ``ttl`` less half a fetch's
    duration.
    A caller finding the value expired waits for the refresh (and shares its
    error, if it fails); after a failed refresh the next starts only once the
    value has expired, so a failing scheduler is not asked again and again.

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
        self._ended_at = float("-inf")
        self._invalid_after = float("-inf")
        #: how long before expiry the next fetch starts (from the latest fetch's duration)
        self._lead = 0.0
        self._refreshing = False
        self._generation = 0
        self._error: BaseException | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dssr-snapshot")
        #: the outcome of the latest fetch (None before the first one ends)
        self.last_contact: Contact | None = None

    def _fresh(self, now: float) -> bool:
        return self._value is not None and self._started_at >= self._invalid_after and now - self._ended_at <= self.ttl

    def get(self) -> T:
        with self._cond:
            while True:
                now = self._clock()
                if self._fresh(now):
                    if not self._refreshing and now - self._ended_at >= self.ttl - self._lead:
                        self._refresh(now)  # ahead of expiry: this caller is answered now
                    assert self._value is not None
                    return self._value
                generation = self._generation
                if not self._refreshing:
                    self._refresh(now)
                while self._refreshing and self._generation == generation:
                    self._cond.wait()
                if self._error is not None and self._generation == generation + 1:
                    raise self._error
                if self._value is not None and self._generation == generation + 1:
                    return self._value

    def _refresh(self, started: float) -> None:
        """Start a fetch in the snapshot's thread (called with the lock held); :meth:`_done` keeps its outcome."""
        self._refreshing = True
        # the caller's context goes along (its request id names the log lines of the fetch)
        future = self._worker.submit(contextvars.copy_context().run, self._fetch)
        future.add_done_callback(lambda done: self._done(done, started))

    def _done(self, future: Future[T], started: float) -> None:
        error = future.exception()
        metrics.recorder().snapshot_refreshed(ok=error is None)
        with self._cond:
            self._refreshing = False
            self._error = error
            self._generation += 1
            if error is None:
                self._value = future.result()
                self._started_at, self._ended_at = started, self._clock()
                self._lead = min(self.ttl / 2, AHEAD * (self._ended_at - started))
                self.last_contact = Contact(time.time(), True)
            else:
                self._lead = 0.0
                self.last_contact = Contact(time.time(), False, str(error) or error.__class__.__name__)
            self._cond.notify_all()
        _return_freed_memory()

    def invalidate(self) -> None:
        """The next :meth:`get` fetches anew (a refresh already running does not count)."""
        with self._cond:
            self._invalid_after = self._clock() + 1e-9


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _load_malloc_trim()


def _return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing elsewhere).

    A queue answer parsed and then dropped leaves its memory free in the C
    heap, where glibc keeps it: over slurmrestd at 1,000 running jobs the
    server stayed at 86-88 MB without this, 68-69 MB with it
    (``benchmarks/poll_cycle.py --scale 1000 --interface http``).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


class _Round(Generic[V]):
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.done = threading.Event()
        self.results: dict[str, V] = {}
        self.error: BaseException | None = None


class Batcher(Generic[V]):
    """Gathers keys asked for by concurrent callers into one ``fetch(keys)`` call.

    While a call runs, new keys gather into the next round; the caller that
    found no call running runs rounds until none is left.  A round's call
    starts after each of its callers asked, so a listing fetched through a
    Batcher reflects everything that happened before its caller asked (what
    :meth:`~dssr_core.batch.OnceAttempt.find` must promise).
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
