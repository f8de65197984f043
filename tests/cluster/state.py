"""Where each test cluster keeps its things on this machine, and its state file (read by reusing sessions).

Every cluster has a state dir (configs, keys, logs, pid files, ``cluster.json``; removed by its ``down``),
a data dir (scratch, and for two of them the ledger) and shares the cache (debootstrap'ed roots, locks).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tests.cluster.base import write

CACHE = Path("/var/cache/dssr-test-cluster")  # debootstrap'ed roots and the lock files, kept between runs

STATE_2205 = Path("/run/dssr-test-cluster")  # Slurm 22.05 + 24.11 (root, 0755)
DATA_2205 = Path("/var/tmp/dssr-test-cluster")  # their scratch + ledger (shared with the 24.11 chroot)
STATE_2605 = Path("/run/dssr-sid-cluster")  # Slurm 26.05 (seen at /var/lib/dssr in its root)
DATA_2605 = Path("/var/tmp/dssr-sid-cluster")
STATE_GE = Path("/run/dssr-ge-cluster")  # Grid Engine 8.1.9
DATA_GE = Path("/var/tmp/dssr-ge-cluster")


def read(state_file: Path) -> dict[str, Any]:
    """The whole state file; {} when there is none (or it is unreadable)."""
    try:
        d = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def entry(state_file: Path, key: str) -> dict[str, Any] | None:
    """One cluster's record in ``state_file`` (``Cluster.to_json()``), None when absent."""
    try:
        value = json.loads(state_file.read_text())[key]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def update(state_file: Path, entries: dict[str, Any], mode: int = 0o600) -> None:
    """Set ``entries`` in ``state_file``, keeping the others."""
    d = read(state_file)
    d.update(entries)
    write(state_file, json.dumps(d, indent=1), mode)


def drop(state_file: Path, key: str) -> None:
    """Remove ``key`` from an existing state file."""
    if not state_file.exists():
        return
    d = read(state_file)
    d.pop(key, None)
    write(state_file, json.dumps(d, indent=1), 0o600)


def keep_logs(name: str, folders: dict[str, Path], files: dict[str, Path] | None = None) -> Path | None:
    """Copy a failed bring-up's logs out of the state dir (which ``down`` removes) into
    ``/tmp/<name>-failed-logs-<time>``: each of ``folders`` under its relative name ("" = at the top)."""
    present = {rel: src for rel, src in folders.items() if src.exists()}
    if not present and not any(f.exists() for f in (files or {}).values()):
        return None
    keep = Path(f"/tmp/{name}-failed-logs-{int(time.time())}")
    for rel, src in present.items():
        shutil.copytree(src, keep / rel if rel else keep, dirs_exist_ok=True)
    for rel, src in (files or {}).items():
        if src.exists():
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, keep / rel)
    return keep
