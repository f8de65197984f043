"""Job records of the local connector, in SQLite in the state folder.

One connection shared under a lock (the connector serialises its own work);
WAL mode so that a reader in another process (``sqlite3`` by hand) never blocks it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dssr_core import ClusterError, JobState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    nodes INTEGER NOT NULL DEFAULT 1,
    command TEXT NOT NULL DEFAULT '',
    job_dir TEXT NOT NULL,
    script TEXT NOT NULL DEFAULT '',
    submitted REAL NOT NULL,
    started REAL,
    ended REAL,
    pid INTEGER,
    pid_start TEXT,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    collected INTEGER NOT NULL DEFAULT 0,
    spec_digest TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name);
"""

ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


@dataclass(frozen=True)
class JobRecord:
    id: int
    name: str
    number: int
    state: JobState
    held: bool
    nodes: int
    command: str
    job_dir: str
    script: str
    submitted: float
    started: float | None
    ended: float | None
    pid: int | None
    pid_start: str | None
    exit_code: int | None
    reason: str
    collected: bool
    spec_digest: str = ""

    @property
    def jobid(self) -> str:
        return str(self.id)

    def elapsed_seconds(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.ended if self.ended is not None else (now if now is not None else time.time())
        return max(0.0, end - self.started)


def _record(row: sqlite3.Row) -> JobRecord:
    data = dict(row)
    data["state"] = JobState(data["state"])
    data["held"] = bool(data["held"])
    data["collected"] = bool(data["collected"])
    return JobRecord(**data)


class JobStore:
    """The ``jobs`` table; every method is atomic and thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "spec_digest" not in columns:  # a database of an earlier version
                self._db.execute("ALTER TABLE jobs ADD COLUMN spec_digest TEXT NOT NULL DEFAULT ''")
        except sqlite3.Error as exc:
            raise ClusterError(
                f"The local job database {str(path)!r} cannot be opened: {exc}.", transient=False
            ) from None

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise ClusterError(f"The local job database failed: {exc}.") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside is recorded together or not at all (a crash inside leaves nothing).

        The caller holds :attr:`lock` throughout: the connection is shared.
        """
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        self._execute("COMMIT")

    def insert(self, name: str, number: int, held: bool, nodes: int, command: str, spec_digest: str = "") -> int:
        """A new queued job; its folder is filled in by :meth:`set_prepared` in the same :meth:`transaction`."""
        cur = self._execute(
            "INSERT INTO jobs (name, number, state, held, nodes, command, job_dir, submitted, spec_digest)"
            " VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)",
            (name, number, JobState.QUEUED.value, int(held), nodes, command, time.time(), spec_digest),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_prepared(self, jobid: int, job_dir: str, script: str) -> None:
        self._execute("UPDATE jobs SET job_dir = ?, script = ? WHERE id = ?", (job_dir, script, jobid))

    def delete_unprepared(self) -> list[int]:
        """Remove queued records without a folder (left by versions that recorded a job before preparing it)."""
        rows = self._execute(
            "SELECT id FROM jobs WHERE job_dir = '' AND state = ?", (JobState.QUEUED.value,)
        ).fetchall()
        self._execute("DELETE FROM jobs WHERE job_dir = '' AND state = ?", (JobState.QUEUED.value,))
        return [row[0] for row in rows]

    def get(self, jobid: int) -> JobRecord | None:
        row = self._execute("SELECT * FROM jobs WHERE id = ?", (jobid,)).fetchone()
        return _record(row) if row is not None else None

    def find_uncollected(self, name: str) -> JobRecord | None:
        row = self._execute(
            "SELECT * FROM jobs WHERE name = ? AND collected = 0 ORDER BY id DESC LIMIT 1", (name,)
        ).fetchone()
        return _record(row) if row is not None else None

    def active(self) -> list[JobRecord]:
        rows = self._execute("SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY id", ACTIVE).fetchall()
        return [_record(row) for row in rows]

    def all(self) -> list[JobRecord]:
        return [_record(row) for row in self._execute("SELECT * FROM jobs ORDER BY id").fetchall()]

    def mark_running(self, jobid: int, pid: int, pid_start: str | None, started: float) -> None:
        self._execute(
            # never over an end: a process beside this one may have terminated the job meanwhile
            "UPDATE jobs SET state = ?, pid = ?, pid_start = ?, started = ? WHERE id = ? AND state IN (?, ?)",
            (JobState.RUNNING.value, pid, pid_start, started, jobid, *ACTIVE),
        )

    def mark_finished(self, jobid: int, state: JobState, exit_code: int | None, ended: float, reason: str) -> bool:
        """Record the end of a job still queued or running; False when it had already ended."""
        cur = self._execute(
            "UPDATE jobs SET state = ?, exit_code = ?, ended = ?, reason = ?, held = 0"
            " WHERE id = ? AND state IN (?, ?)",
            (state.value, exit_code, ended, reason, jobid, *ACTIVE),
        )
        return cur.rowcount == 1

    def release(self, jobid: int, held: bool = False) -> None:
        """Let the job start (or, ``held``, keep it from starting)."""
        self._execute("UPDATE jobs SET held = ? WHERE id = ?", (int(held), jobid))

    def mark_collected(self, jobid: int) -> None:
        self._execute("UPDATE jobs SET collected = 1 WHERE id = ?", (jobid,))

    def ping(self) -> None:
        self._execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()
