"""Debian roots built once by debootstrap from this machine's own mirror, and cached under /var/cache.

The 24.11 cluster runs in a chroot of Debian 13 (``trixie-root``), the 26.05 one in a Debian sid root
(``sid-root``); tests/deploy builds its container image from a Debian 12 one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.cluster.base import HarnessError, log, sh, tail, write


def debian_mirror() -> str:
    """The Debian archive URL this machine's apt uses (never another host)."""
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") or p.name == "sources.list":
            try:
                texts.append((p.suffix, p.read_text()))
            except OSError:
                pass
    for suffix, text in texts:
        found = _from_deb822(text) if suffix == ".sources" else _from_one_line(text)
        if found:
            return found
    raise HarnessError("no Debian mirror found in /etc/apt/sources.list(.d)")


def _from_deb822(text: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        f = {}
        for ln in stanza.splitlines():
            if ":" in ln and not ln.lstrip().startswith("#"):
                k, v = ln.split(":", 1)
                f[k.strip().lower()] = v.strip()
        suites = f.get("suites", "").split()
        if "deb" in f.get("types", "").split() and any(s and "security" not in s and "-" not in s for s in suites):
            for uri in f.get("uris", "").split():
                if "security" not in uri:
                    return uri.rstrip("/")
    return None


def _from_one_line(text: str) -> str | None:
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) >= 3 and parts[0] == "deb":
            rest = [x for x in parts[1:] if not x.startswith("[")]
            if rest and "security" not in rest[0] and "-" not in rest[1]:
                return rest[0].rstrip("/")
    return None


def debootstrap_root(root: Path, suite: str, packages: str) -> float:
    """A minbase Debian ``suite`` with ``packages`` at ``root``, built once and kept (seconds spent building).

    The completion marker holds the debootstrap command: a changed package list rebuilds the root.
    A package the suite no longer has fails with one line naming it."""
    marker = root / ".dssr-complete"
    mirror = debian_mirror()
    what = f"debootstrap --variant=minbase --include={packages} {suite} {mirror}\n"
    if marker.exists() and marker.read_text() == what:
        return 0.0
    t0 = time.monotonic()
    partial = root.with_name(root.name + ".partial")
    umount_under(partial)
    umount_under(root)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {suite} from {mirror} (cached in {root} afterwards)")
    logf = root.with_name(f"debootstrap-{root.name}.log")
    with open(logf, "w") as out:
        argv = ["debootstrap", "--variant=minbase", f"--include={packages}", suite, str(partial), mirror]
        rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=1500).returncode
    umount_under(partial)
    if rc != 0:
        text = logf.read_text(errors="replace")
        gone = re.search(r"Couldn't find these debs: (.*)", text)
        if gone:
            raise HarnessError(
                f"Debian {suite} no longer has the package(s) {gone.group(1).strip()} (debootstrap: see {logf})"
            )
        raise HarnessError(f"debootstrap {suite} failed ({rc}); see {logf}{tail(logf)}")
    os.replace(partial, root)
    write(marker, what)
    dt = time.monotonic() - t0
    log(f"{suite} root built in {dt:.1f}s")
    return dt


def mounts_under(root: Path) -> list[str]:
    out = []
    prefix = str(root).rstrip("/") + "/"
    for ln in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = ln.split()[4].replace("\\040", " ")
        if mp.startswith(prefix) or mp == str(root):
            out.append(mp)
    return out


def umount_under(root: Path) -> None:
    """Every mount at or below ``root``, deepest first (lazily when busy)."""
    for _ in range(3):
        mps = sorted(set(mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not mps:
            return
        for mp in mps:
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)


def bind(root: Path, src: str, rel: str, ro: bool = False, recursive: bool = False) -> None:
    """``src`` bind-mounted at ``root``/``rel`` (once; private, or a slave when ``recursive``)."""
    dst = root / rel.lstrip("/")
    dst.mkdir(parents=True, exist_ok=True)
    if str(dst) in mounts_under(root):
        return
    sh(["mount", "--rbind" if recursive else "--bind", src, str(dst)])
    sh(["mount", "--make-rslave" if recursive else "--make-private", str(dst)], check=False)
    if ro:
        sh(["mount", "-o", "remount,bind,ro", str(dst)], check=False)


def need(package: str, what: str) -> str:
    """The message of a failed step of the sid root's cluster, naming the package it needs from sid."""
    return f"{what} (sid package {package!r} missing or changed)"
