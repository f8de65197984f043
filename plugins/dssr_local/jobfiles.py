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
