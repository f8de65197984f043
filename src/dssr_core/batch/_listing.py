"""Listing a folder of the cluster's shared storage (``/request/pvcls``), confined to the allowed roots.

The path is normalised here (``/data`` prefix, no ``..``), then resolved on the
cluster: a link that leads out of the roots is refused as well.
"""

from __future__ import annotations

import posixpath
import re

from .._errors import BadRequest, ClusterError
from .._job import FileEntry
from .._shell import command
from .._validate import shown
from ._shell import ServiceShell
from ._ssh import script_command


class FolderListing:
    """``find`` one level deep as the service user, inside ``roots`` only."""

    def __init__(self, shell: ServiceShell, roots: tuple[str, ...]) -> None:
        self.shell = shell
        self.roots = roots
        self._roots: tuple[str, ...] | None = None

    def list(self, path: str) -> list[FileEntry]:
        """Entries of ``path`` (one level), with modification time and size, sorted."""
        wanted = _logical_path(path)
        roots = self.roots
        if wanted == "/":
            return [FileEntry(path=root + "/", is_dir=True) for root in roots]
        if not any(wanted == root or wanted.startswith(root.rstrip("/") + "/") for root in roots):
            raise BadRequest(f"The folder {shown(path)} is outside the folders this downstream may list.")
        script = (
            f"real=$(realpath -e -- {command(wanted)}) || exit 3\n"
            'printf "%s\\n" "$real"\n'
            '[ -d "$real" ] || exit 4\n'
            f"find {command(wanted + '/')} -mindepth 1 -maxdepth 1 -printf '%y\\037%T@\\037%s\\037%f\\0'\n"
        )
        remote, data = script_command(script)
        result = self.shell.run(remote, stdin=data, kind="pvcls")
        if result.rc in (3, 4):
            raise BadRequest(f"The folder {shown(path)} does not exist or is not a folder.")
        real, _, listing = result.stdout.partition("\n")
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in self._real_roots()):
            raise BadRequest(f"The folder {shown(path)} is outside the folders this downstream may list.")
        if result.rc != 0 and not listing:
            raise ClusterError(f"Listing {shown(path)} failed: {result.stderr.strip()[:300]}")
        entries = []
        for item in listing.split("\0"):
            fields = item.split("\x1f", 3)
            if len(fields) != 4:
                continue
            kind, mtime, size, base = fields
            is_dir = kind == "d"
            full = posixpath.join(wanted, base) + ("/" if is_dir else "")
            entries.append(FileEntry(path=full, is_dir=is_dir, mtime=int(float(mtime or 0)), size=int(size or 0)))
        return sorted(entries, key=lambda e: e.path)

    def _real_roots(self) -> tuple[str, ...]:
        """The roots with every link resolved on the cluster (asked once)."""
        if self._roots is None:
            script = "".join(f"realpath -m -- {command(root)}\n" for root in self.roots)
            remote, data = script_command(script)
            result = self.shell.run(remote, stdin=data)
            if result.rc != 0:
                raise ClusterError(f"Resolving the listable folders failed: {result.stderr.strip()[:300]}")
            self._roots = tuple(line for line in result.stdout.splitlines() if line)
        return self._roots


def _logical_path(path: str) -> str:
    """The folder asked for, normalised (``/data`` prefix removed); ``..`` may not climb out."""
    if not isinstance(path, str) or "\0" in path or "\n" in path:
        raise BadRequest("The folder path is not valid.")
    text = path.strip() or "/"
    if text == "/data" or text.startswith("/data/"):
        text = text[len("/data") :] or "/"
    if not text.startswith("/"):
        text = "/" + text
    if re.search(r"(^|/)\.\.(/|$)", text):
        raise BadRequest(f"The folder {shown(path)} climbs out with '..'.")
    return posixpath.normpath(text)
