"""Formats shared by schedulers: elapsed times and node lists."""

from __future__ import annotations

import re

from ._errors import BadRequest

_ELAPSED = re.compile(r"^(?:(?P<days>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)(?:\.\d+)?\Z")


def normalize_elapsed(text: str | None) -> str:
    """``M:SS``, ``MM:SS``, ``H:MM:SS``, ``D-HH:MM:SS`` (or ``D-HH``) -> ``HH:MM:SS``, hours unbounded.

    Empty, ``INVALID``, ``UNLIMITED`` and other non-times give ``00:00:00``.
    """
    if not text:
        return "00:00:00"
    text = text.strip()
    match = _ELAPSED.match(text)
    if not match:
        day_hours = re.match(r"^(\d+)-(\d+)\Z", text)
        if day_hours:
            return f"{int(day_hours[1]) * 24 + int(day_hours[2]):02d}:00:00"
        return "00:00:00"
    days = int(match["days"] or 0)
    hours = int(match["h"] or 0) + 24 * days
    return f"{hours:02d}:{int(match['m']):02d}:{int(match['s']):02d}"


def elapsed_seconds(hhmmss: str) -> int:
    hours, minutes, seconds = (int(x) for x in normalize_elapsed(hhmmss).split(":"))
    return hours * 3600 + minutes * 60 + seconds


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def expand_nodelist(text: str | None) -> list[str]:
    """Expand a Slurm host list: ``node[1-3,7]`` -> node1 node2 node3 node7; ``a[01-02]b`` keeps zero padding.

    Several bracket groups multiply (``r[1-2]n[1-2]``); commas outside brackets
    separate hosts.  ``(null)``, ``None assigned`` and empty give ``[]``.
    """
    if not text or text.strip() in ("(null)", "None assigned", "n/a"):
        return []
    hosts: list[str] = []
    for item in _split_top_level(text.strip()):
        hosts.extend(_expand_one(item))
    return hosts


def _split_top_level(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise BadRequest(f"Malformed node list: {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise BadRequest(f"Malformed node list: {text!r}")
    items.append(text[start:])
    return [item for item in (i.strip() for i in items) if item]


def _expand_one(item: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", item)
    if not match:
        return [item]
    prefix, suffix = item[: match.start()], item[match.end() :]
    names = []
    for part in match[1].split(","):
        bounds = part.split("-")
        if len(bounds) == 1 and bounds[0].isdigit():
            values = [bounds[0]]
        elif len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            low, high = int(bounds[0]), int(bounds[1])
            width = len(bounds[0])
            values = [str(n).zfill(width) for n in range(low, high + 1)]
        else:
            raise BadRequest(f"Malformed node list: {item!r}")
        for value in values:
            names.extend(_expand_one(prefix + value + suffix))
    return names
