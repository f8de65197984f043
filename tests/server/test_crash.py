"""kill -9 of a real dssr-server (local connector) at random moments during a burst of submissions.

After each restart, every submission the server had accepted is answered with
the same id when the upstream retries it, and every job runs exactly once: its
command appends one line to a file of its own, which must hold that one line.
"""

from __future__ import annotations

import http.client
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.helpers import legacy_template, submit_args
from tests.server.live import Server, free_port, wait_for

ROUNDS = 8
BURST = 24
SEED = 12


def job(marks: Path, name: str, number: int) -> dict[str, Any]:
    return submit_args(name, number, legacy_template(f"echo ran >> {marks / name}"), key="shell")


def try_submit(server: Server, args: dict[str, Any]) -> str | None:
    """The job id, or None when the server died before answering."""
    try:
        answer = server.post("/submit", args)
    except (OSError, http.client.HTTPException):  # refused, reset, or cut in the middle of the answer
        return None
    assert answer.status == 200, answer.body[:300]
    return str(answer.json()[0])


def test_every_accepted_job_runs_exactly_once_and_keeps_its_id_across_kill_9(tmp_path: Path) -> None:
    chance = random.Random(SEED)
    state, marks = tmp_path / "state", tmp_path / "marks"
    marks.mkdir()
    env = {"JARVICE_LOCAL_MAX_JOBS": "8"}
    port: int | None = None
    kills = []
    for round_ in range(ROUNDS):
        server = Server(state, env=env, port=port or free_port()).start()
        port = server.port
        burst = [job(marks, f"crash-{round_}-{i}", round_ * 100 + i) for i in range(BURST)]
        delay = chance.uniform(0.0, 0.6)
        with ThreadPoolExecutor(8) as pool:
            answers = pool.map(lambda args: try_submit(server, args), burst)  # noqa: B023 - called before the loop moves on
            time.sleep(delay)
            assert server.process is not None
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            accepted = dict(zip((args["name"] for args in burst), answers, strict=True))
        kills.append(sum(jobid is not None for jobid in accepted.values()))

        again = Server(state, env=env, port=port).start()
        try:
            for args in burst:  # the upstream retries every submission it has no answer for, and some it has
                jobid = try_submit(again, args)
                assert jobid is not None
                if accepted[args["name"]] is not None:
                    assert jobid == accepted[args["name"]], f"{args['name']}: a retry got another id"
                accepted[args["name"]] = jobid
            for args in burst:
                ref = {"name": args["name"], "number": args["number"], "jobid": accepted[args["name"]]}
                end = wait_for(lambda: (a := again.post("/exitstatus", ref)).status == 200 and a.json(), timeout=60)  # noqa: B023 - called before the loop moves on
                assert end[0] == 0, (ref, end)
                assert (marks / args["name"]).read_text() == "ran\n", f"{args['name']} did not run exactly once"
        finally:
            again.stop()
        assert "Traceback" not in again.log()
    print("accepted before each kill:", kills)
    # the kills fell at different points of the bursts: before any answer, in the middle, after all of them
    assert min(kills) < BURST and max(kills) > 0, kills
