"""``dssr --url``: the same subcommands through a remote server's /v1 print what they print locally."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Callable

import pytest

from dssr_core import Settings
from dssr_core.cli import main
from tests.server.live import Server

Run = Callable[..., tuple[int, str]]


def local(tmp_path: Path) -> Run:
    settings = Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path / "local-state")})

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(["--connector", "local", "--executor", "shell", *argv], out=out, settings=settings), out.getvalue()

    return run


def remote(url: str, token: str | None = None) -> Run:
    settings = Settings({"DSSR_TOKEN": token} if token else {})

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(["--url", url, *argv], out=out, settings=settings), out.getvalue()

    return run


def session(dssr: Run) -> list[tuple[int, str]]:
    """One job's life through ``dssr``, each answer with the job id, elapsed times and host names masked."""
    code, out = dssr("submit", "--name", "cli-url", "--number", "4", "--", "echo one; sleep 2; echo two")
    jobid = out.strip()
    job = ["--name", "cli-url", "--number", "4", jobid]
    answers = [(code, out)]
    time.sleep(0.5)
    answers += [dssr("status", *job), dssr("running"), dssr("tail", "-n", "1", *job)]
    deadline = time.monotonic() + 20
    while (ended := dssr("exitstatus", *job))[0] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    answers += [ended, dssr("status", *job), dssr("exitstatus", "--name", "cli-url", "--number", "4", "999")]
    held = dssr("submit", "--name", "cli-held", "--hold", "--", "true")[1].strip()
    answers += [dssr("release", "--name", "cli-held", held), dssr("terminate", "--force", "--name", "cli-held", held)]
    return [(code, _masked(text, jobid, held)) for code, text in answers]


def _masked(text: str, *ids: str) -> str:
    for number, jobid in enumerate(ids):
        text = re.sub(rf"\b{re.escape(jobid)}\b", f"<id{number}>", text)
    text = re.sub(r"\d\d:\d\d:\d\d", "<elapsed>", text)
    return re.sub(r"(running <elapsed>) \S+", r"\1 <host>", text)


def test_every_subcommand_through_url_prints_what_it_prints_locally(tmp_path: Path) -> None:
    server = Server(tmp_path / "state").start()
    try:
        through = session(remote(server.url))
    finally:
        server.stop()
    here = session(local(tmp_path))
    assert through == here
    assert through[1][1].startswith("running <elapsed> <host>") and "rc=0" in through[4][1]


def test_through_url_a_refusal_says_the_servers_detail_and_an_unreachable_server_is_a_cluster_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = Server(tmp_path / "state", env={"JARVICE_DSSR_AUTH_TOKEN": "s3cret"}).start()
    try:
        assert remote(server.url)("running")[0] == 2
        assert "requires a bearer token" in capsys.readouterr().err
        assert remote(server.url, "s3cret")("running") == (0, "")
        assert remote(server.url, "s3cret")("tail", "--name", "x", "1")[0] == 1
    finally:
        server.stop()
    assert remote(server.url)("running")[0] == 1
    assert "does not answer" in capsys.readouterr().err
    assert main(["--url", "ftp://x", "running"]) == 2
