"""The clusters' processes: started in a session of their own with a pid file, found again, stopped.

A pid file ``<state>/pids/<name>.pid`` holds ``{"pid": ..., "argv": [...]}``: ``status`` reads it, and
so does a test that restarts one daemon with its own argv.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

from tests.cluster.base import SYS_PATH, HarnessError, log, write


def spawn(name: str, argv: list[str], *, state: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a foreground daemon in its own session, output to ``<state>/log/<name>.out``; write its pid file."""
    (state / "log").mkdir(parents=True, exist_ok=True)
    out = open(state / "log" / f"{name}.out", "ab")
    p = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env or {"PATH": SYS_PATH, "LANG": "C.UTF-8"},
        start_new_session=True,
        cwd="/",
    )
    out.close()
    write(state / "pids" / f"{name}.pid", json.dumps({"pid": p.pid, "argv": argv}))
    return p


def pidfile(name: str, state: Path) -> dict[str, Any]:
    """The pid file of daemon ``name`` (``pid``, ``argv``); raises OSError/ValueError when absent or broken."""
    d = json.loads((state / "pids" / f"{name}.pid").read_text())
    if not isinstance(d, dict):
        raise ValueError(f"{name}.pid holds no record")
    return d


def pidfile_pids(state: Path) -> set[int]:
    """The pids of every pid file under ``state`` whose process still exists."""
    pids = set()
    for f in (state / "pids").glob("*.pid") if (state / "pids").exists() else []:
        try:
            pid = int(json.loads(f.read_text())["pid"])
        except (ValueError, KeyError, OSError, TypeError):
            continue
        if Path(f"/proc/{pid}").exists():
            pids.add(pid)
    return pids


def pidfile_alive(name: str, state: Path) -> bool:
    try:
        pid = int(pidfile(name, state)["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in proc_state(pid)


def proc_state(pid: int) -> str:
    """The ``State:`` line of /proc/<pid>/status in lower case; "gone zombie" when the process is gone."""
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("State:"):
                return ln.lower()
    except OSError:
        pass
    return "gone zombie"


def all_pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def uid_of(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


def ns_inode(pid: int | str, kind: str) -> int | None:
    """The inode of ``/proc/<pid>/ns/<kind>`` (net, uts, pid), None when it cannot be read."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        children.setdefault(ppid(pid), []).append(pid)
    return children


def with_descendants(pids: set[int]) -> set[int]:
    """``pids`` and every process below them (never this process)."""
    me = os.getpid()
    pids = set(pids)
    children = _children()
    todo = list(pids)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in pids and c != me:
                pids.add(c)
                todo.append(c)
    pids.discard(me)
    return pids


def service_pids(names: Iterable[str]) -> set[int]:
    """The pids of every process whose command name is one of ``names``."""
    wanted = set(names)
    return {pid for pid in all_pids() if comm(pid) in wanted}


def _signal(pids: Iterable[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _running(pids: Iterable[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists() and "zombie" not in proc_state(p)}


def kill(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGKILL job processes (slurmstepd and below, user processes) at once, SIGTERM the daemons,
    SIGKILL what is left after ``grace``; then wait for the exits to be collected."""
    pids = set(pids)
    jobs: set[int] = set()
    children = _children()
    todo = [p for p in pids if comm(p) == "slurmstepd" or uid_of(p) >= 1000 and uid_of(p) != 65534]
    while todo:
        p = todo.pop()
        if p in jobs:
            continue
        jobs.add(p)
        todo.extend(children.get(p, []))
    _signal(jobs & pids, signal.SIGKILL)
    _signal(pids - jobs, signal.SIGTERM)
    all_of_them = set(pids)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap(all_of_them)
        pids = _running(pids)
        if not pids:
            break
        time.sleep(0.1)
    if pids:
        log("SIGKILL after {:.0f}s: {}".format(grace, ", ".join(f"{p} {comm(p)}" for p in sorted(pids))))
    _signal(pids, signal.SIGKILL)
    # wait until the kernel has let go of them (our children: reaped here; orphans: by init)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reap(all_of_them)
        if not any(Path(f"/proc/{p}").exists() for p in all_of_them):
            break
        time.sleep(0.05)


def stop(pids: list[int], timeout: float) -> None:
    """SIGTERM ``pids`` and wait until they are gone (reaped when they are our children)."""
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running(pids):
        if time.monotonic() > deadline:
            raise HarnessError(f"daemons {pids} still running {timeout:.0f}s after SIGTERM")
        time.sleep(0.1)
    reap(pids)


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of our own children (daemons started by this process)."""
    for p in pids:
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass
