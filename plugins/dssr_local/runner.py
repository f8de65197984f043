"""The supervisor of one local job: ``python -m dssr_local.runner JOB_DIR``.

Started by the connector as the leader of a new session (so of a new process
group).  It runs the node script once per node (``PROCESS_PROCID`` 0..n-1),
all in its group, output appended to the job's one output file.  Rank 0's exit
code is the job's (or, with a success marker, whether rank 0 printed it); a
failing other rank ends the job.  The code is written atomically to the exit
file, then the whole group is killed so that nothing of the job outlives it.
It does not need the server: a job keeps running and its end is recorded
while the server is down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from . import procs
from .jobfiles import CANCEL_FILE, EXIT_FILE, NODE_SCRIPT, OUTPUT_FILE, LaunchPlan, claim, write_atomic

#: the exit code of a job terminated before it started (as the connector records a terminated job)
CANCELLED_CODE = -15


def _copy_lines(source: IO[bytes], output: IO[bytes], marker: bytes, seen: threading.Event) -> None:
    for line in source:
        output.write(line)
        output.flush()
        if line.rstrip(b"\r\n") == marker:
            seen.set()


def supervise(job_dir: Path) -> int:
    """Run the ranks and return the job's exit code."""
    plan = LaunchPlan.load(job_dir)
    script = str(job_dir / NODE_SCRIPT)
    marker = plan.success_marker.encode() if plan.success_marker else None
    seen = threading.Event()
    reader: threading.Thread | None = None
    ranks: dict[int, int] = {}
    # kept referenced: a Popen collected while running is reaped by subprocess itself, hiding its exit from os.wait
    procs: list[subprocess.Popen[bytes]] = []
    with open(job_dir / OUTPUT_FILE, "ab", buffering=0) as output:
        for rank in range(plan.nodes):
            env = dict(plan.environment, PROCESS_PROCID=str(rank))
            piped = rank == 0 and marker is not None
            proc = subprocess.Popen(
                ["bash", script],
                cwd=job_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if piped else output,
                stderr=subprocess.STDOUT,
            )
            ranks[proc.pid] = rank
            procs.append(proc)
            if piped and marker is not None and proc.stdout is not None:
                reader = threading.Thread(target=_copy_lines, args=(proc.stdout, output, marker, seen), daemon=True)
                reader.start()
        while True:
            pid, status = os.wait()
            if pid not in ranks:
                continue
            rank = ranks.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if rank == 0:
                if marker is None:
                    return code
                if reader is not None:
                    reader.join(timeout=5.0)
                return 0 if seen.is_set() else (code or 1)
            if code != 0:
                output.write(f"dssr-local: rank {rank} ended with code {code}; ending the job\n".encode())
                return code


def main(argv: list[str]) -> None:
    job_dir = Path(argv[1])
    # A server killed between starting this supervisor and recording it starts
    # another after its restart: only the first to claim the job runs it.
    if not claim(job_dir, os.getpid(), procs.start_time(os.getpid())):
        return
    try:
        if (job_dir / CANCEL_FILE).exists():
            code = CANCELLED_CODE
        else:
            code = supervise(job_dir)
    except Exception as exc:  # noqa: BLE001 - the job fails with the reason in its output
        with open(job_dir / OUTPUT_FILE, "ab") as output:
            output.write(f"dssr-local: the job could not run: {exc}\n".encode())
        code = 1
    write_atomic(job_dir / EXIT_FILE, f"{code}\n")
    # Nothing of the job outlives it (the supervisor included).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(os.getpgid(0), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv)
