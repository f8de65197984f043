"""``?follow=true`` when the cluster fails mid-stream: a dropped connection is waited out, anything else ends
the stream without an exception reaching waitress (which would answer a bare 500 and log a traceback).

The downstream is a stand-in (the failures are injected at will); the real runs are in test_v1_http.py
(local connector) and tests/slurm/test_v1_cluster.py (Slurm).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dssr_core import ClusterError, JobRef, JobState, JobStatus, NotFound, OutputChunk
from dssr_server.v1.follow import Followers

REF = JobRef("job", 0, "7")


class FlakyDownstream:
    """Stand-in for dssr_core.Downstream: a job writing one line per state look-up, ``fail`` raised once by
    the look-up numbered ``fail_at``; the job ends after ``lines`` look-ups."""

    def __init__(self, lines: int, fail_at: int, fail: ClusterError) -> None:
        self.lines, self.fail_at, self.fail = lines, fail_at, fail
        self.calls = 0
        self.output = b""

    def runstatus(self, ref: JobRef) -> JobStatus | None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.fail
        if self.calls > self.lines:
            return None
        self.output += f"line-{self.calls}\n".encode()
        return JobStatus(ref, JobState.RUNNING)

    def read_output(self, ref: JobRef, offset: int, limit: int = 65536) -> OutputChunk:
        if not self.output:
            raise NotFound("no output yet")
        data = self.output[offset : offset + limit]
        return OutputChunk(data, offset + len(data))


def follow(downstream: Any) -> bytes:
    stream = Followers(downstream, limit=2, interval=0.01).follow(REF, None)
    try:
        return b"".join(stream)
    finally:
        stream.close()


def test_a_dropped_connection_mid_stream_is_waited_out_and_no_line_is_lost_or_repeated() -> None:
    downstream = FlakyDownstream(lines=6, fail_at=3, fail=ClusterError("Socket is closed."))
    text = follow(downstream).decode()
    assert text == downstream.output.decode() and downstream.output  # every line written, once, in order
    assert text.splitlines() == [f"line-{i}" for i in (1, 2, 4, 5, 6)]  # look-up 3 failed: it wrote nothing


def test_a_lasting_cluster_error_ends_the_stream_without_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    downstream = FlakyDownstream(lines=6, fail_at=3, fail=ClusterError("No key.", transient=False))
    with caplog.at_level(logging.WARNING, logger="dssr_server.v1.follow"):
        text = follow(downstream).decode()
    assert text == "line-1\nline-2\n"
    assert any("stopped: No key." in record.getMessage() for record in caplog.records)
