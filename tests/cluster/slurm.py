"""The Slurm 22.05 and 24.11 clusters as one unit: one lock, one state dir and state file, one ledger.

``up`` brings 22.05 up (and 24.11 when asked), ``down`` removes everything either made, also after a
crash; ``status``/``alive``/``load`` read what is running. The 26.05 cluster (slurm2605.py) is separate.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.cluster import accounts, daemons, images, ledger, network, packages, scratch, state
from tests.cluster.base import HarnessError, log
from tests.cluster.ledger import SLURM as LEDGER
from tests.cluster.locks import LOCK_2205, SessionLock
from tests.cluster.model import Cluster
from tests.cluster.slurm2205 import BRIDGE, CORE_2205, DATA, NODES, STATE, STATE_FILE, scaled_2205, up_2205
from tests.cluster.slurm2411 import CHROOT, CORE_2411, TNODES, up_2411

#: commands that drive the harness: their command lines name the state dir, yet they are not the cluster's
DRIVERS = ("harness.py", "tests.cluster", "pytest")


def up(with_2411: bool = False) -> Cluster:
    """The 22.05 cluster (and the 24.11 one), after cleaning what an earlier run left; returns 22.05."""
    why = packages.preflight()
    if why:
        raise HarnessError(f"cluster tier: {why}")
    packages.ensure_packages()
    if STATE.exists() or LEDGER.exists():
        log("leftovers of an earlier run: cleaning first")
        down()
    host = up_2205()
    if with_2411:
        up_2411(host)
    return host


def status() -> dict[str, Any]:
    d: dict[str, Any] = {"state_file": STATE_FILE.exists()}
    d["daemons"] = {n: daemons.pidfile_alive(n, STATE) for n in CORE_2205 + CORE_2411}
    d["alive_2205"] = STATE_FILE.exists() and all(d["daemons"][n] for n in CORE_2205)
    d["alive_2411"] = d["alive_2205"] and all(d["daemons"][n] for n in CORE_2411)
    d["scale_2205"] = scaled_2205()
    return d


def load(key: str = "slurm-22.05") -> Cluster | None:
    """The running cluster ``key`` ("slurm-22.05" or "slurm-24.11") from the state file, None when absent."""
    record = state.entry(STATE_FILE, key)
    return None if record is None else Cluster.from_json(record)


def alive(key: str = "slurm-22.05") -> bool:
    s = status()
    return bool(s["alive_2205"] if key == "slurm-22.05" else s["alive_2411"]) and load(key) is not None


def session_lock(shared: bool = False, timeout: float = 1200) -> SessionLock:
    return SessionLock(timeout=timeout, shared=shared, path=LOCK_2205)


def save_logs() -> Path | None:
    """Copy the daemons' logs out of the state dir (which ``down`` removes)."""
    if not (STATE / "log").exists():
        return None
    return state.keep_logs("dssr-test-cluster", {"": STATE / "log", "c2411": STATE / "c2411" / "log"})


def _ours(created_uids: set[int]) -> set[int]:
    """pids of everything the harness started: pidfiles, processes in our namespaces or chroot,
    processes naming our state dirs, processes of users we created, and their descendants."""
    me = os.getpid()
    pids = daemons.pidfile_pids(STATE)
    ns_inodes = network.netns_inodes([*NODES, *TNODES])
    chroot_real = os.path.realpath(CHROOT)
    markers = [str(STATE), str(CHROOT)]
    for pid in daemons.all_pids():
        if pid == me:
            continue
        try:
            if ns_inodes and daemons.ns_inode(pid, "net") in ns_inodes:
                pids.add(pid)
                continue
            if os.readlink(f"/proc/{pid}/root").startswith(chroot_real):
                pids.add(pid)
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(m in cmd for m in markers) and not any(d in cmd for d in DRIVERS):
                pids.add(pid)
                continue
            if created_uids and os.stat(f"/proc/{pid}").st_uid in created_uids:
                pids.add(pid)
        except OSError:
            pass
    return daemons.with_descendants(pids)  # sshd sessions, slurmstepd, job steps


def down() -> float:
    """Stop and remove everything ``up`` made. Safe to run any time, also after a crash."""
    t0 = time.monotonic()
    led = LEDGER.read()
    if state.STATE_GE.exists():  # the Grid Engine cluster has state here: it runs jobs as the same users
        led = ledger.hand_over(led, to=ledger.GRIDENGINE)
    daemons.kill(_ours(accounts.created_uids(led)))
    network.netns_remove([*NODES, *TNODES], BRIDGE)
    images.umount_under(CHROOT)
    images.umount_under(CHROOT.with_name(CHROOT.name + ".partial"))
    scratch.unlink_symlinks(LEDGER)
    if CHROOT.exists() and (CHROOT / "etc/passwd").exists():
        try:
            accounts.drop_from_root(CHROOT)
        except OSError:
            pass
    accounts.undo(led)
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    dt = time.monotonic() - t0
    log(f"down in {dt:.1f}s")
    return dt
