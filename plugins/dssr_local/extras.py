"""The local connector's optional operations: hold, output by offset, the host as a one-node cluster."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dssr_core import ClusterInfo, JobRef, JobState, NodeInfo, NotFound, OutputChunk, PartitionInfo

from .jobfiles import OUTPUT_FILE
from .store import JobRecord, JobStore

#: the one partition of the local connector
PARTITION = "local"


class LocalExtras:
    """Mixed into :class:`~dssr_local.connector.LocalConnector`, whose state it reads."""

    store: JobStore
    hostname: str
    _lock: threading.RLock

    def _record(self, ref: JobRef) -> JobRecord | None:
        raise NotImplementedError

    def _start_queued(self) -> None:
        raise NotImplementedError

    def hold(self, ref: JobRef) -> None:
        with self._lock:
            record = self._record(ref)
            if record is None or record.state is not JobState.QUEUED:
                raise NotFound(f"There is no queued job {ref.jobid} to hold.")
            self.store.release(record.id, held=True)

    def read_output(self, ref: JobRef, offset: int, limit: int = 65536) -> OutputChunk:
        with self._lock:
            record = self._record(ref)
        if record is None or not record.job_dir or record.collected:
            raise NotFound(f"Job {ref.jobid} has no output.")
        try:
            with open(Path(record.job_dir) / OUTPUT_FILE, "rb") as handle:
                handle.seek(offset)
                data = handle.read(limit)
        except FileNotFoundError:
            raise NotFound(f"Job {ref.jobid} has no output yet.") from None
        return OutputChunk(data, offset + len(data))

    def cluster(self) -> ClusterInfo:
        """This host as one node: its CPUs, its memory (``/proc/meminfo``); busy CPUs are running jobs' nodes."""
        cpus = os.cpu_count() or 1
        running = sum(r.nodes for r in self.store.active() if r.state is JobState.RUNNING)
        total, free = _memory_mb()
        node = NodeInfo(
            name=self.hostname,
            state="mixed" if running else "idle",
            partitions=(PARTITION,),
            cpus=cpus,
            free_cpus=max(0, cpus - running),
            memory_mb=total,
            free_memory_mb=free,
        )
        return ClusterInfo(partitions=(PartitionInfo(PARTITION, "up", (self.hostname,), default=True),), nodes=(node,))


def _memory_mb() -> tuple[int, int]:
    """(total, available) memory of this host in MB, (0, 0) where ``/proc/meminfo`` is missing."""
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) // 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)
