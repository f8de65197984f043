"""docs/api-v1.md's curl examples, run as written against a fresh server; their shown output must match."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.server.live import Server

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-v1.md"


def examples() -> list[tuple[str, list[str]]]:
    """Every ``$ command`` of the doc's console blocks, with the lines shown under it."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def matches(shown: list[str], output: str) -> bool:
    pattern = "\n".join(".*".join(re.escape(part) for part in line.split("...")) for line in shown)
    return re.fullmatch(pattern, output.rstrip("\n"), re.S) is not None


def test_every_curl_example_of_the_v1_doc_answers_as_shown(tmp_path: Path) -> None:
    found = examples()
    assert len(found) >= 10 and all(command.startswith("curl ") for command, _ in found)
    server = Server(tmp_path / "state").start()
    try:
        for command, shown in found:
            run = subprocess.run(
                ["bash", "-c", command],
                capture_output=True,
                text=True,
                timeout=60,
                env={"DSSR": server.url, "PATH": "/usr/bin:/bin"},
            )
            assert run.returncode == 0, (command, run.stderr)
            assert matches(shown, run.stdout), (command, run.stdout)
    finally:
        server.stop()
