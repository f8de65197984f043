"""The Slurm and Grid Engine test clusters share the seed's users: neither teardown removes them from under the other.

Run on temporary ledgers: no cluster, no user is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster import ledger
from tests.cluster.ledger import Ledger


@pytest.fixture
def ledgers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setattr(ledger, "SLURM", Ledger(tmp_path / "slurm" / "ledger.json"))
    monkeypatch.setattr(ledger, "GRIDENGINE", Ledger(tmp_path / "ge" / "ledger.json"))
    return tmp_path / "slurm" / "ledger.json", tmp_path / "ge" / "ledger.json"


SLURM_MADE = {
    "users": ["jarvice", "kirby"],
    "group_members": [["jarvice", "kirby"]],
    "dirs": ["/run/sshd"],
    "symlinks": [["/usr/local/bin/apptainer", "/x"]],
}


def test_the_slurm_teardown_hands_its_users_to_a_live_grid_engine_cluster(ledgers: tuple[Path, Path]) -> None:
    _, ge = ledgers
    left = ledger.hand_over(dict(SLURM_MADE), to=ledger.GRIDENGINE)
    assert left == {"symlinks": [["/usr/local/bin/apptainer", "/x"]]}  # only its own things stay its to undo
    taken = json.loads(ge.read_text())
    assert taken["users"] == ["jarvice", "kirby"] and taken["group_members"] == [["jarvice", "kirby"]]
    assert taken["dirs"] == ["/run/sshd"]


def test_the_grid_engine_teardown_hands_its_users_to_a_live_slurm_cluster(ledgers: tuple[Path, Path]) -> None:
    slurm, _ = ledgers
    made = {"users": ["mario", "gone"], "group_members": [["jarvice", "mario"]], "passwords": [["mario", "!"]]}
    ledger.hand_over(made, to=ledger.SLURM, users=["mario"])  # only the users that still exist
    taken = json.loads(slurm.read_text())
    assert taken["users"] == ["mario"] and taken["passwords"] == [["mario", "!"]]
    assert taken["group_members"] == [["jarvice", "mario"]]


def test_a_ledger_is_written_for_root_only(ledgers: tuple[Path, Path]) -> None:
    slurm, _ = ledgers
    ledger.SLURM.add("dirs", "/run/sshd")
    ledger.SLURM.add("dirs", "/run/sshd")
    assert json.loads(slurm.read_text()) == {"dirs": ["/run/sshd"]}  # recorded once
    assert slurm.stat().st_mode & 0o777 == 0o600
