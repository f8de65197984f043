"""Small waits shared by the local tests (poll until a deadline, never a fixed sleep)."""

from __future__ import annotations

import time
from typing import Callable

from dssr_core import ClusterError, ExitStatus, JobRef, JobState
from dssr_local.connector import LocalConnector


def wait_until(what: str, probe: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_end(connector: LocalConnector, ref: JobRef, timeout: float = 10.0) -> ExitStatus:
    found: list[ExitStatus] = []

    def probe() -> bool:
        try:
            found.append(connector.exit_status(ref))
        except ClusterError:
            return False
        return True

    wait_until(f"job {ref.jobid} to end", probe, timeout)
    return found[-1]


def state_of(connector: LocalConnector, ref: JobRef) -> JobState | None:
    status = connector.status(ref)
    return None if status is None else status.state


def wait_running(connector: LocalConnector, ref: JobRef) -> None:
    wait_until(f"job {ref.jobid} to run", lambda: state_of(connector, ref) is JobState.RUNNING)
