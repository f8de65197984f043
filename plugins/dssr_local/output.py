"""Reading the end of a job's output file without reading all of it."""

from __future__ import annotations

import os
from pathlib import Path

_BLOCK = 64 * 1024


def last_lines(path: Path, lines: int) -> str | None:
    """The last ``lines`` lines of ``path`` (decoded as UTF-8, bad bytes replaced); None when the file does not exist."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    with handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        # one more newline than asked: the text may end with one
        while position > 0 and data.count(b"\n") <= lines:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept)
