"""One session (a test run, a benchmark, the CLI's up/down) drives a cluster at a time on this machine.

A lock file per cluster that can be up on its own (flock; shared by sessions that reuse a running
cluster, exclusive for up and down).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tests.cluster.base import HarnessError, log
from tests.cluster.state import CACHE

LOCK_2205 = CACHE / "session.lock"  # Slurm 22.05 + 24.11
LOCK_2605 = CACHE / "sid-session.lock"
LOCK_GE = CACHE / "ge-session.lock"


class SessionLock:
    """Held while a session uses (``shared``) or changes (exclusive) a cluster; waits up to ``timeout`` s."""

    def __init__(self, timeout: float = 1200, shared: bool = False, path: Path = LOCK_2205) -> None:
        self.timeout = timeout
        self.shared = shared
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> SessionLock:
        CACHE.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        said = False
        while True:
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if not said:
                    log(f"another session holds {self.path}: waiting up to {self.timeout:.0f}s")
                    said = True
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise HarnessError(f"another session still holds {self.path} after {self.timeout:.0f}s") from None
                time.sleep(1)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
