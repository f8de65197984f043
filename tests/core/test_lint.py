"""Tooling that keeps the code base as it is: ruff lint and format clean, every ``# noqa`` with its reason, small modules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("src", "plugins") for p in sorted((ROOT / folder).rglob("*.py"))]
MAX_LINES = 400
#: ``# noqa: CODE - why`` (the reason after a dash)
NOQA_WITH_REASON = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")


def test_ruff_lint_is_clean_on_the_library_and_plugins() -> None:
    """The rules are in pyproject.toml ([tool.ruff.lint])."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "plugins"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_the_library_and_plugins_as_they_are() -> None:
    """One style for every module: ``ruff format src plugins`` would change nothing."""
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "src", "plugins"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_noqa_names_its_rule_and_says_why() -> None:
    bare = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in SOURCES
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            if "# noqa" in line and not NOQA_WITH_REASON.search(line)]
    assert bare == []


def test_no_module_is_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): n for path in SOURCES if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
