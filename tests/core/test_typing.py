"""The library and its plugins are typed (py.typed is shipped): mypy must stay clean on them, and on the
tests and benchmarks too (pyproject.toml: strict, less the annotations pytest makes pointless)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what the second run checks: the tests, the benchmarks, and the example plugin (fully strict, as a third party's)
NOT_SHIPPED = ["tests", "benchmarks", "conftest.py", "examples/third-party-plugin/dssr_example"]


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_mypy_is_clean_on_the_library_and_plugins() -> None:
    result = mypy("src", "plugins")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_tests_the_benchmarks_and_the_example_plugin() -> None:
    result = mypy(*NOT_SHIPPED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tests_bodies_are_checked_and_a_stale_ignore_is_an_error(tmp_path: Path) -> None:
    """The override for ``tests.*`` keeps check_untyped_defs and warn_unused_ignores (and the rest of strict)."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_probe.py").write_text(
        "def test_untyped(fixture):\n"
        '    count: int = "three"\n'
        "\n\n"
        "SEEN = 1  # type: ignore[assignment]  # nothing to ignore here\n"
        "NAMES: dict = {}\n"
    )
    result = mypy("--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", "tests", cwd=tmp_path)
    out = result.stdout
    assert "test_probe.py:2: error: Incompatible types in assignment" in out, out
    assert 'test_probe.py:5: error: Unused "type: ignore" comment' in out, out
    assert "test_probe.py:6: error: Missing type arguments" in out, out
    assert "test_probe.py:1:" not in out, out  # an unannotated test function and fixture are fine
