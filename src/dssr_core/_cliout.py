"""What the ``dssr`` command does when its output cannot be written (kept out of :mod:`.cli` for its size)."""

from __future__ import annotations

import errno
import os
import sys

#: what writing stdout fails with when the file it goes to cannot take it (full disk, quota, I/O error)
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def drop_stdout() -> None:
    """Point stdout at /dev/null: what is left in its buffer is not written again when Python exits."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
