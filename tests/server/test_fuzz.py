"""The hypothesis fuzzer (tests/fuzz.py) against the real server on the local connector."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fuzz import Fuzzer, run_fuzz
from tests.server.live import Server

#: requests per endpoint group (five groups); the whole run stays well under a minute on 2 cores
EXAMPLES = 100


def test_no_endpoint_answers_5xx_non_json_an_amplified_answer_or_changes_state_on_a_4xx(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "folder").mkdir()
    (data / "file.txt").write_text("x\n")
    server = Server(tmp_path / "state", env={"JARVICE_LOCAL_DATA_DIR": str(data), "JARVICE_LOCAL_MAX_JOBS": "2"})
    server.start()
    started = time.monotonic()
    try:
        fuzzer = Fuzzer("127.0.0.1", server.port)
        run_fuzz(fuzzer, EXAMPLES)
    finally:
        server.stop()
    print(f"fuzz: {fuzzer.sent} requests in {time.monotonic() - started:.1f}s")
    assert "Traceback" not in server.log()
    assert fuzzer.sent >= 5 * EXAMPLES
