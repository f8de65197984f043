"""The one way a command line is built for a shell: every part quoted."""

from __future__ import annotations

import shlex
from typing import Iterable, Mapping


def command(*parts: object) -> str:
    """Join ``parts`` into one shell command line, each part quoted.

    ``command("tail", "-n", 100, path)`` -> ``tail -n 100 '/x y/z.out'``.
    Lists and tuples are flattened so optional arguments read naturally.
    """
    words: list[str] = []
    for part in parts:
        if isinstance(part, (list, tuple)):
            words.extend(str(p) for p in part)
        else:
            words.append(str(part))
    return " ".join(shlex.quote(w) for w in words)


def exports(variables: Mapping[str, object]) -> str:
    """``export K='v'`` lines, one per variable, values quoted (keys must be identifiers)."""
    lines = []
    for key, value in variables.items():
        if not key.isidentifier():
            raise ValueError(f"not a shell variable name: {key!r}")
        lines.append(f"export {key}={shlex.quote(str(value))}")
    return "\n".join(lines)


def pipeline(*commands: str) -> str:
    """Join already-built commands with ``&&``."""
    return " && ".join(commands)


def quote_all(words: Iterable[object]) -> list[str]:
    return [shlex.quote(str(w)) for w in words]
