"""The library and its plugins are typed (py.typed is shipped): mypy must stay clean on them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_is_clean_on_the_library_and_plugins() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "src", "plugins"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
