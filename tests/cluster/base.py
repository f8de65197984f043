"""What every module of the harness uses: its error, its log line, running a command, writing files, waiting."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parents[2]
SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HarnessError(RuntimeError):
    """The cluster could not be brought up (message says which step, logs say why)."""


def log(msg: str) -> None:
    if os.environ.get("DSSR_CLUSTER_QUIET") != "1":
        print(f"[dssr-cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(
    argv: list[str],
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    input: str | None = None,
    quiet_fail: bool = False,
) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and cp.returncode != 0:
        raise HarnessError(f"{shlex.join(argv)} -> exit {cp.returncode}: {cp.stderr.strip() or cp.stdout.strip()}")
    if not check and cp.returncode != 0 and not quiet_fail:
        log(f"(ignored) {shlex.join(argv)} -> {cp.returncode}: {cp.stderr.strip()[:200]}")
    return cp


Owner = str | int | None


def write(path: Path, text: str | bytes, mode: int = 0o644, owner: Owner = None, group: Owner = None) -> Path:
    """``text`` at ``path`` with ``mode`` (and owner, group), replaced in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text)
    os.chmod(tmp, mode)
    chown(tmp, owner, group)
    os.replace(tmp, path)
    return path


def mkdir(path: Path, mode: int = 0o755, owner: Owner = None, group: Owner = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    chown(path, owner, group)
    return path


def chown(path: Path, owner: Owner, group: Owner) -> None:
    uid = -1 if owner is None else owner if isinstance(owner, int) else pwd.getpwnam(owner).pw_uid
    gid = -1 if group is None else group if isinstance(group, int) else grp.getgrnam(group).gr_gid
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)


def wait_for(
    what: str,
    pred: Callable[[], bool],
    timeout: float,
    logfile: Path | None = None,
    procs: Iterable[subprocess.Popen[bytes]] = (),
) -> None:
    """Until ``pred()`` (an exception counts as not yet); fails naming ``what`` and the tail of ``logfile``
    after ``timeout`` seconds, or at once when one of ``procs`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - a daemon that is not up yet may fail the probe in any way
            pass
        for p in procs:
            if p.poll() is not None:
                raise HarnessError(f"{what}: process exited with {p.returncode}; see {logfile}{tail(logfile)}")
        if time.monotonic() > deadline:
            raise HarnessError(f"timeout ({timeout}s) waiting for {what}; see {logfile}{tail(logfile)}")
        time.sleep(0.1)


def tail(path: Path | None, n: int = 15) -> str:
    if not path or not Path(path).exists():
        return ""
    lines = Path(path).read_text(errors="replace").splitlines()[-n:]
    return "\n  | " + "\n  | ".join(lines)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
