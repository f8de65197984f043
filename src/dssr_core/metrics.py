"""Instrumentation points: what the library and its plugins count, behind a small interface.

Code that does something worth counting calls the process's current
:class:`Recorder`::

    from dssr_core import metrics
    metrics.recorder().cluster_call("squeue", seconds, "ok")

The default recorder does nothing, so the library costs nothing and imports
no metrics package.  ``dssr-server`` installs a Prometheus recorder
(:mod:`dssr_server.metrics`) with :func:`install`; a third-party connector
calls the same methods and its figures appear on ``/metrics`` too.
Recorders must be thread-safe and must never raise.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Mapping

from ._errors import ClusterError

#: outcome of a call to the cluster
OK, ERROR, UNREACHABLE = "ok", "error", "unreachable"


class Recorder:
    """What can be recorded.  This base records nothing; subclasses override what they keep."""

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """An HTTP request was answered (``endpoint``: the route, e.g. ``/runstatus``)."""

    def cluster_call(self, kind: str, seconds: float, outcome: str) -> None:
        """A command on the cluster (``squeue``, ``sacct``...) or a slurmrestd call ended.

        ``outcome``: :data:`OK`; :data:`ERROR` (it answered with a failure: exit
        status or HTTP status); :data:`UNREACHABLE` (no answer: connection, time-out).
        """

    def snapshot_refreshed(self, ok: bool) -> None:
        """The shared job snapshot was fetched anew (``ok``: the cluster answered)."""

    def ssh_connection(self, reconnect: bool) -> None:
        """An SSH connection was opened (``reconnect``: it replaces one that died)."""

    def token_refused(self, reason: str) -> None:
        """A token was refused: the upstream's shared secret (``upstream``) or a user's bearer
        token (``missing``, ``expired``, ``issuer``, ``audience``, ``signature``...)."""

    def submission(self, existed: bool) -> None:
        """A submission was answered: a new job, or one that already existed (same name)."""

    def jobs_seen(self, counts: Mapping[str, int]) -> None:
        """The number of this downstream's jobs in each state (``queued``, ``running``...) in
        the latest snapshot; states absent from ``counts`` have none."""


_current: Recorder = Recorder()


def recorder() -> Recorder:
    """The process's current recorder (a no-op one unless something installed another)."""
    return _current


def install(new: Recorder | None) -> Recorder:
    """Make ``new`` the current recorder (None: the no-op one); returns the previous one."""
    global _current
    previous, _current = _current, new if new is not None else Recorder()
    return previous


class _Call:
    outcome = OK


@contextmanager
def cluster_call(kind: str) -> Iterator[_Call]:
    """Time a call to the cluster; set ``.outcome`` on the yielded object to :data:`ERROR` when it
    answered with a failure.  A :class:`~dssr_core.ClusterError` raised inside counts as
    :data:`UNREACHABLE` (and goes on), any other exception as :data:`ERROR`."""
    call = _Call()
    start = time.perf_counter()
    try:
        yield call
    except ClusterError:
        call.outcome = UNREACHABLE
        raise
    except BaseException:
        call.outcome = ERROR
        raise
    finally:
        recorder().cluster_call(kind, time.perf_counter() - start, call.outcome)
