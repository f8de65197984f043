"""The Slurm and Grid Engine test clusters share the seed's users: neither teardown removes them from under the other.

Run on temporary ledgers: no cluster, no user is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster import gridengine, harness


@pytest.fixture
def ledgers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for module, name in ((harness, "slurm"), (gridengine, "ge")):
        monkeypatch.setattr(module, "DATA", tmp_path / name)
        monkeypatch.setattr(module, "LEDGER", tmp_path / name / "ledger.json")
    monkeypatch.setattr(harness, "write", lambda path, text, mode=0o644, *a: Path(path).write_text(text))
    monkeypatch.setattr(gridengine, "write", lambda path, text, mode=0o644, *a: Path(path).write_text(text))
    monkeypatch.setattr(gridengine, "mkdir", lambda path, *a: Path(path).mkdir(parents=True, exist_ok=True))
    return tmp_path / "slurm" / "ledger.json", tmp_path / "ge" / "ledger.json"


SLURM_MADE = {
    "users": ["jarvice", "kirby"],
    "group_members": [["jarvice", "kirby"]],
    "dirs": ["/run/sshd"],
    "symlinks": [["/usr/local/bin/apptainer", "/x"]],
}


def test_the_slurm_teardown_hands_its_users_to_a_live_grid_engine_cluster(ledgers: tuple[Path, Path]) -> None:
    _, ge = ledgers
    left = harness.hand_over_users(dict(SLURM_MADE))
    assert left == {"symlinks": [["/usr/local/bin/apptainer", "/x"]]}  # only its own things stay its to undo
    taken = json.loads(ge.read_text())
    assert taken["users"] == ["jarvice", "kirby"] and taken["group_members"] == [["jarvice", "kirby"]]
    assert taken["dirs"] == ["/run/sshd"]


def test_the_grid_engine_teardown_hands_its_users_to_a_live_slurm_cluster(ledgers: tuple[Path, Path]) -> None:
    slurm, _ = ledgers
    harness.DATA.mkdir(parents=True)
    gridengine.hand_over_users({"group_members": [["jarvice", "mario"]], "passwords": [["mario", "!"]]}, ["mario"])
    taken = json.loads(slurm.read_text())
    assert taken["users"] == ["mario"] and taken["passwords"] == [["mario", "!"]]
    assert taken["group_members"] == [["jarvice", "mario"]]
