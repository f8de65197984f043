"""ExampleConnector: jobs kept in memory, each one completed as soon as it is submitted."""

from __future__ import annotations

import itertools
import threading
from typing import Iterator, Sequence

from dssr_core import (
    Check,
    Connector,
    Executor,
    ExitStatus,
    FileEntry,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    NotFound,
    Settings,
    Submission,
)


class ExampleConnector(Connector):
    name = "example"
    default_executor = "shell"  # its jobs never run: the plain executor is enough

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.greeting = settings.text("DSSR_EXAMPLE_GREETING", "hello from the example connector") or ""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._jobs: dict[str, str] = {}  # jobid -> job name

    def submit(self, spec: JobSpec, executor: Executor) -> Submission:
        with self._lock:
            for jobid, name in self._jobs.items():
                if name == spec.name:
                    return Submission(jobid)
            jobid = str(next(self._ids))
            self._jobs[jobid] = spec.name
        return Submission(jobid, script=f"# {spec.name}: nothing runs here\n")

    def snapshot(self) -> Sequence[JobStatus]:
        return []

    def exit_status(self, ref: JobRef) -> ExitStatus:
        if ref.jobid not in self._jobs:
            return ExitStatus(ref, JobState.UNKNOWN)
        return ExitStatus(ref, JobState.COMPLETED, output=self.greeting + "\n", detail="COMPLETED")

    def cleanup(self, ref: JobRef) -> None:
        pass

    def terminate(self, ref: JobRef, force: bool = False) -> None:
        pass

    def release(self, ref: JobRef) -> None:
        pass

    def events(self, ref: JobRef) -> str:
        return f"job {ref.jobid}: {self._jobs.get(ref.jobid, 'unknown')}"

    def tail(self, ref: JobRef, lines: int) -> str:
        if ref.jobid not in self._jobs:
            raise NotFound(f"Job {ref.jobid} has no output.")
        return self.greeting + "\n"

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return []

    def ping(self) -> None:
        pass

    def diagnose(self, executor: Executor | None) -> Iterator[Check]:
        """``dssr doctor``: the default check (``ping``), then this connector's own."""
        yield from super().diagnose(executor)
        greeting = self.settings.raw("DSSR_EXAMPLE_GREETING")
        yield Check(
            "DSSR_EXAMPLE_GREETING is set",
            greeting is not None,
            f"jobs will print {greeting!r}" if greeting else "jobs print a default line; set it to your own",
        )

    def describe(self) -> dict[str, str]:
        return {"example": "in-memory, nothing runs"}
