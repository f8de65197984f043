"""What a harness changed on the machine outside its own folders, written down *before* the change.

A cluster's ``down`` undoes exactly what its ledger names, also after a crash. The Slurm 22.05/24.11
harness and the Grid Engine one each keep a ledger (``<data dir>/ledger.json``); the 26.05 cluster
changes nothing outside its own root and folders, so it has none. The seed's users are shared by the
Slurm and the Grid Engine clusters: a teardown while the other cluster is up hands them over
(:func:`hand_over`) instead of removing them.

Format (JSON object, mode 0600): ``users`` [name], ``passwords`` [[name, old shadow field]],
``group_members`` [[user, group]], ``dirs`` [path], ``symlinks`` [[link, target]], ``chroots`` [path],
and for Grid Engine ``netns`` [[node]], ``files`` [path], ``hosts_lines`` [line], ``dirs_tree`` [path].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import state
from tests.cluster.base import write

#: what moves with the users when one cluster's teardown hands them to the other cluster
USER_KINDS = ("users", "group_members", "passwords", "dirs")


@dataclass(frozen=True)
class Ledger:
    path: Path

    def read(self) -> dict[str, Any]:
        try:
            d = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return d if isinstance(d, dict) else {}

    def add(self, kind: str, item: Any) -> None:
        """Record ``item`` under ``kind`` (once)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o755)
        d = self.read()
        d.setdefault(kind, [])
        if item not in d[kind]:
            d[kind].append(item)
        self.save(d)

    def save(self, d: dict[str, Any]) -> None:
        write(self.path, json.dumps(d, indent=1), 0o600)

    def exists(self) -> bool:
        return self.path.exists()


SLURM = Ledger(state.DATA_2205 / "ledger.json")
GRIDENGINE = Ledger(state.DATA_GE / "ledger.json")


def hand_over(led: dict[str, Any], to: Ledger, users: list[str] | None = None) -> dict[str, Any]:
    """``to`` takes over the ``users`` (default: all of ``led``'s) and the group memberships, passwords and
    dirs ``led`` records (its ``down`` removes them); returns what is left of ``led`` for this ``down``."""
    for u in led.get("users", []) if users is None else users:
        to.add("users", u)
    for kind in USER_KINDS[1:]:
        for item in led.get(kind, []):
            to.add(kind, item)
    return {k: v for k, v in led.items() if k not in USER_KINDS}
