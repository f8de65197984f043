"""Slurm states map to the legacy lists and rc table (LEGACY_API.md)."""

from __future__ import annotations

import pytest

from dssr_core import JobState
from dssr_slurm.states import job_state


@pytest.mark.parametrize("state", ["R", "RH", "RS", "SI", "ST", "S", "CG", "SO", "RUNNING", "COMPLETING", "SUSPENDED"])
def test_running_states(state: str) -> None:
    assert job_state(state) is JobState.RUNNING


@pytest.mark.parametrize("state", ["CF", "PD", "RD", "RF", "RQ", "PENDING", "REQUEUED", "CONFIGURING"])
def test_queued_states(state: str) -> None:
    assert job_state(state) is JobState.QUEUED


@pytest.mark.parametrize(
    "state,rc",
    [
        ("COMPLETED", 0),
        ("CD", 0),
        ("FAILED", 1),
        ("NODE_FAIL", 1),
        ("OUT_OF_MEMORY", 1),
        ("TIMEOUT", 1),
        ("BOOT_FAIL", 1),
        ("CANCELLED by 1002", -15),
        ("DEADLINE", -15),
        ("PREEMPTED", -15),
        ("REVOKED", -9),
        ("SPECIAL_EXIT", -9),
        ("", -9),
    ],
)
def test_end_states_rc(state: str, rc: int) -> None:
    assert job_state(state).rc == rc
