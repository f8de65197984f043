"""Supervisor processes: identity (pid + start time, against pid reuse), liveness, signals."""

from __future__ import annotations

import os
import signal
import time


def start_time(pid: int) -> str | None:
    """The process's start time from ``/proc`` (None when it is gone, a zombie, or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is still the process recorded with ``started`` (reaps it if it is our child)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    now = start_time(pid)
    if now is None:
        if os.path.isdir("/proc"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return started is None or now == started


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole process group; a group already gone is not an error."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_after(pgid: int, started: str | None, grace: float) -> None:
    """Wait up to ``grace`` seconds for the group's leader to end (after a TERM), then KILL the group."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(pgid, started):
        time.sleep(0.1)
    signal_group(pgid, signal.SIGKILL)
