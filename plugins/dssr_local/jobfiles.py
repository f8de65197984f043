"""The files of one local job in its folder, shared by the connector and the supervisor."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

NODE_SCRIPT = "node.sh"
LAUNCH_FILE = "launch.json"
OUTPUT_FILE = "output.log"
EXIT_FILE = "exit_code"
SUPERVISOR_LOG = "supervisor.log"
SECRETS_FILE = ".secrets.env"
#: written once, atomically, by the one supervisor that runs the job: "PID START\n"
CLAIM_FILE = "supervisor.pid"
#: written by terminate: a supervisor that claims the job after it runs nothing
CANCEL_FILE = "cancelled"


@dataclass(frozen=True)
class LaunchPlan:
    """What the supervisor runs: ``nodes`` copies of the node script with these variables."""

    nodes: int
    environment: Mapping[str, str] = field(default_factory=dict)
    success_marker: str | None = None

    def save(self, job_dir: Path) -> None:
        write_atomic(job_dir / LAUNCH_FILE, json.dumps(asdict(self)))

    @classmethod
    def load(cls, job_dir: Path) -> "LaunchPlan":
        data = json.loads((job_dir / LAUNCH_FILE).read_text())
        return cls(int(data["nodes"]), dict(data["environment"]), data.get("success_marker"))


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def claim(job_dir: Path, pid: int, started: str | None) -> bool:
    """Make this supervisor the job's only one: False when another has claimed it already.

    The claim file appears whole or not at all (a hard link of a complete file),
    so a server restarted at any moment knows whether the job was started and by whom.
    """
    tmp = job_dir / f".{CLAIM_FILE}.tmp{pid}"
    write_atomic(tmp, f"{pid} {started or '-'}\n")
    try:
        os.link(tmp, job_dir / CLAIM_FILE)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def read_claim(job_dir: Path) -> tuple[int, str | None] | None:
    """(pid, start time) of the supervisor that claimed the job, None when none has."""
    try:
        pid, started = (job_dir / CLAIM_FILE).read_text().split()
        return int(pid), None if started == "-" else started
    except (OSError, ValueError):
        return None


def read_exit_code(job_dir: Path) -> int | None:
    """The job's exit code as the supervisor recorded it, or None when it has not ended."""
    try:
        text = (job_dir / EXIT_FILE).read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return 1
