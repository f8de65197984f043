"""Tooling that keeps the code base as it is: ruff lint and format clean, every ``noqa`` and ``type: ignore``
with its code and its reason, small modules."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("src", "plugins") for p in sorted((ROOT / folder).rglob("*.py"))]
#: every Python file of the repository: what ruff lints and what the comment rules below reach
LINTED = ["src", "plugins", "tests", "benchmarks", "examples", "conftest.py"]
EVERY_FILE = [
    p for name in LINTED for p in ([ROOT / name] if name.endswith(".py") else sorted((ROOT / name).rglob("*.py")))
]
MAX_LINES = 400
#: a noqa comment: its rule codes, a dash and the reason (``noqa: BLE001 - teardown must go on``)
NOQA_WITH_REASON = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")
#: a type-ignore comment: its error codes, then the reason in a comment of its own
#: (``type: ignore[index]  # the listing is read-only``); mypy refuses any other text after the codes
IGNORE_WITH_REASON = re.compile(r"#\s*type:\s*ignore\[[a-z-]+(?:\s*,\s*[a-z-]+)*\]\s*#\s*\S")


def comments(path: Path) -> list[tuple[int, str]]:
    """The line number and the text of every comment in ``path`` (strings and docstrings are not comments)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(token.start[0], token.string) for token in tokens if token.type == tokenize.COMMENT]


def lacking(marker: re.Pattern[str], well_formed: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{number}: {text}"
        for path in EVERY_FILE
        for number, text in comments(path)
        if marker.search(text) and not well_formed.search(text)
    ]


def test_ruff_lint_is_clean_on_every_python_file() -> None:
    """The rules are in pyproject.toml ([tool.ruff.lint]); the tests, benchmarks and examples follow them too."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *LINTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr  # e.g. a noqa ruff cannot read


def test_ruff_format_leaves_every_python_file_as_it_is() -> None:
    """One style for every module, the tests', benchmarks' and examples' too: ``ruff format`` would change nothing."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", *LINTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_noqa_names_its_rule_and_says_why() -> None:
    assert lacking(re.compile(r"#\s*noqa", re.IGNORECASE), NOQA_WITH_REASON) == []


def test_every_type_ignore_names_its_error_code_and_says_why() -> None:
    assert lacking(re.compile(r"#\s*type:\s*ignore"), IGNORE_WITH_REASON) == []


def test_the_comment_rules_judge_comments_and_tell_a_reason_from_none(tmp_path: Path) -> None:
    """Strings are not comments; a marker without its code or its reason is caught, one with both is not."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""A docstring that quotes ``x  # noqa``."""\n\nTEXT = "# type: ignore"  # a comment\n')
    assert comments(sample) == [(3, "# a comment")]
    good = [
        "x = 1  # noqa: BLE001 - teardown must go on",
        "f()  # noqa: E402, F401 - after sys.path",
        "y = z  # type: ignore[index]  # the listing is read-only",
        "w = v  # type: ignore[no-redef, unused-ignore]  # before cryptography 43",
    ]
    bad = [
        "x = 1  # noqa",
        "x = 1  # noqa: BLE001",
        "x = 1  # noqa: BLE001 teardown",
        "x = 1  # noqa - why",
        "y = z  # type: ignore",
        "y = z  # type: ignore[index]",
        "y = z  # type: ignore  # why",
        "y = z  # type: ignore[index] - why",
    ]
    assert [line for line in good if not (NOQA_WITH_REASON.search(line) or IGNORE_WITH_REASON.search(line))] == []
    assert [line for line in bad if NOQA_WITH_REASON.search(line) or IGNORE_WITH_REASON.search(line)] == []


def test_no_module_is_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): n for path in SOURCES if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
