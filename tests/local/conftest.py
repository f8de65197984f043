"""Fixtures of the local connector's tests: connectors on a fresh state folder, closed after the test."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable, Iterator

import pytest

from dssr_core import Settings
from dssr_local.connector import LocalConnector
from dssr_local.shell import ShellExecutor

MakeConnector = Callable[..., LocalConnector]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def local_env(state_dir: Path) -> dict[str, str]:
    return {
        "JARVICE_LOCAL_STATE_DIR": str(state_dir),
        "JARVICE_LOCAL_MAX_JOBS": "4",
        "JARVICE_LOCAL_KILL_GRACE": "0.5",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }


@pytest.fixture
def make_connector(local_env: dict[str, str]) -> Iterator[MakeConnector]:
    """Build connectors (env overrides as keywords); every one is closed and its jobs killed afterwards."""
    made: list[LocalConnector] = []

    def make(**overrides: str) -> LocalConnector:
        connector = LocalConnector(Settings(dict(local_env, **overrides)))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        pids = set()
        try:
            pids = {r.pid for r in connector.store.all() if r.pid}
        except Exception:  # noqa: BLE001 - already closed
            pass
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        connector.close()


@pytest.fixture
def connector(make_connector: MakeConnector) -> LocalConnector:
    return make_connector()


@pytest.fixture
def shell() -> ShellExecutor:
    return ShellExecutor(Settings({}))
