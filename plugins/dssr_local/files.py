"""Listing folders under the data root, refusing any path that escapes it (``..``, symlinks)."""

from __future__ import annotations

import os
from pathlib import Path

from dssr_core import BadRequest, FileEntry, NotFound, shown


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve(root: Path, path: object) -> tuple[str, str]:
    """(real root, real folder) for ``path`` relative to ``root``; BadRequest when it escapes."""
    if not isinstance(path, str) or "\0" in path:
        raise BadRequest("The folder to list must be a path string.")
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, path.lstrip("/")))
    if not _inside(target, real_root):
        raise BadRequest(f"The path {shown(path)} is outside the shared data folder.")
    return real_root, target


def list_folder(root: Path, path: object, details: bool) -> list[FileEntry]:
    real_root, target = resolve(root, path)
    if not os.path.isdir(target):
        if os.path.exists(target):
            raise BadRequest(f"The path {shown(path)} is not a folder.")
        raise NotFound(f"There is no folder {shown(path)}.")
    relative = os.path.relpath(target, real_root)
    prefix = "/" if relative == "." else "/" + relative + "/"
    entries = []
    with os.scandir(target) as found:
        for entry in sorted(found, key=lambda e: e.name):
            # a link leading out of the root is shown as a plain entry, never followed
            follow = _inside(os.path.realpath(entry.path), real_root)
            try:
                info = entry.stat(follow_symlinks=follow)
                is_dir = entry.is_dir(follow_symlinks=follow)
            except OSError:
                continue
            entries.append(
                FileEntry(
                    path=prefix + entry.name,
                    is_dir=is_dir,
                    mtime=int(info.st_mtime) if details else 0,
                    size=int(info.st_size) if details else 0,
                )
            )
    return entries
