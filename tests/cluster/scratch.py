"""What jobs find on the nodes: the seed's scratch layout, and the Apptainer stand-in where no real one is."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from tests.cluster.accounts import SERVICE_USER, USERS
from tests.cluster.base import REPO, log, mkdir, sh, write
from tests.cluster.ledger import Ledger

STANDIN_DIR = REPO / "tests" / "standin"


def scratch_layout(root: Path, user_mode: int) -> list[Path]:
    """The seed's layout under ``root``: images/ and cache/ shared, users/<user> owned by each
    user (group: the user's own group) with ``user_mode``; returns the user folders."""
    mkdir(root, 0o755)
    mkdir(root / "images", 0o1777)
    mkdir(root / "cache", 0o1777)
    mkdir(root / "users", 0o755)
    return [mkdir(root / "users" / u, user_mode, u, grp.getgrgid(pwd.getpwnam(u).pw_gid).gr_name) for u in USERS]


def probe_acl(data: Path) -> tuple[bool, str]:
    """Whether POSIX ACLs (and default ACLs) work on ``data``'s file system; else why not."""
    probe = data / ".acl-probe"
    probe.mkdir(parents=True, exist_ok=True)
    try:
        cp = subprocess.run(["setfacl", "-m", f"u:{SERVICE_USER}:rwx", str(probe)], capture_output=True, text=True)
        if cp.returncode != 0:
            return False, f"setfacl does not work on {data}: {cp.stderr.strip()}"
        cp = subprocess.run(
            ["setfacl", "-d", "-m", f"u:{SERVICE_USER}:rwx", str(probe)], capture_output=True, text=True
        )
        if cp.returncode != 0:
            return False, f"default ACLs do not work on {data}: {cp.stderr.strip()}"
        return True, ""
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def make_scratch(data: Path, scratch: Path, scratch_acl: Path) -> tuple[Path, Path | None, str]:
    """Two scratch trees: ``scratch`` (user folders 2770, jarvice in each user's group) and, where ACLs
    work, ``scratch_acl`` (0700, jarvice by ACL). Returns (scratch, scratch_acl or None, why it is None)."""
    mkdir(data, 0o755)
    scratch_layout(scratch, 0o2770)
    ok, why = probe_acl(data)
    if not ok:
        return scratch, None, why
    for d in scratch_layout(scratch_acl, 0o700):
        sh(["setfacl", "-m", f"u:{SERVICE_USER}:rwx", str(d)])
        sh(["setfacl", "-d", "-m", f"u:{SERVICE_USER}:rwx", str(d)])
    return scratch, scratch_acl, ""


def install_standin(dest: Path) -> Path | None:
    """A copy of tests/standin/apptainer in ``dest`` (a folder of the cluster's state): jobs run the copy and
    never reach into the checkout, which may sit in a folder other users cannot enter (e.g. /root/x, 0700)."""
    src = STANDIN_DIR / "apptainer"
    if not src.exists():
        log(f"no {src}: apptainer/singularity not installed")
        return None
    mkdir(dest, 0o755, 0, 0)
    return write(dest / "apptainer", src.read_bytes(), 0o755, 0, 0)


def link_standin(root: Path, target: str, ledger: Ledger) -> None:
    """apptainer/singularity on the PATH of jobs -> the stand-in's copy ``target`` (as seen inside ``root``);
    each link recorded in ``ledger`` first. A file of the same name that is not ours is left alone."""
    for name in ("apptainer", "singularity"):
        link = root / "usr/local/bin" / name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.exists() or link.is_symlink():
            if [str(link), target] not in ledger.read().get("symlinks", []) and link.is_symlink() is False:
                log(f"{link} exists and is not ours: left alone")
                continue
            if not link.is_symlink():
                continue
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        ledger.add("symlinks", [str(link), target])
        link.symlink_to(target)


def unlink_symlinks(ledger: Ledger, under: Path | None = None) -> None:
    """Remove the symlinks ``ledger`` records (those below ``under`` only, when given) that still point where
    the harness pointed them; forget them."""
    led = ledger.read()
    keep = []
    for link, target in led.get("symlinks", []):
        if under is not None and not link.startswith(str(under) + "/"):
            keep.append([link, target])
            continue
        p = Path(link)
        if p.is_symlink() and os.readlink(p) == target:
            p.unlink()
    if led:
        led["symlinks"] = keep
        ledger.save(led)
