"""Checks of every value that comes from outside: the upstream, a library caller, the command line.

The one place where the rules every connector relies on live:

* whole-string matching (``\\A...\\Z``): ``$`` also matches before a final
  newline, which let ``"job\\n"`` pass as a second job beside ``"job"``;
* ASCII digits only: ``str.isdigit`` is true for ``"²"``, which ``int`` refuses,
  and ``\\d`` matches every script's digits;
* bounded integers: nothing of 2**63 or more reaches SQLite or a scheduler;
* a bounded length for every value echoed in an error or written to a log
  (:func:`shown`), so that a 10 MB name is not sent back nor logged;
* one rule for splitting a template into lines (:func:`script_lines`), the
  one bash uses, shared by the key parser and the secret redaction.
"""

from __future__ import annotations

import base64
import binascii
import re
import reprlib

from ._errors import BadRequest

#: the largest integer SQLite (and a signed 64-bit field anywhere) holds
MAX_INT64 = 2**63 - 1
#: the upstream's job numbers: integers a JSON reader anywhere keeps exactly
MAX_NUMBER = 2**53 - 1
#: more nodes than any cluster this serves has (Slurm's own node-count fields are 32-bit)
MAX_NODES = 100_000
#: characters of an outside value shown in an error or a log line
ECHO_LIMIT = 80

#: Job names the upstream may use.  They reach scheduler commands and file
#: names, so the pattern leaves no room for shell syntax or path separators.
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}\Z")
#: cluster (POSIX) user names that may become a path component and a shell word (what ``useradd`` takes)
CLUSTER_USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\Z")
#: Downstream job ids: scheduler-neutral (Slurm's are digits; others may differ).
JOBID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
#: an integer written with ASCII digits (and at most 19 of them: anything longer is out of range anyway)
_INTEGER = re.compile(r"\A-?[0-9]{1,19}\Z")

_REPR = reprlib.Repr()
_REPR.maxstring = ECHO_LIMIT
_REPR.maxother = ECHO_LIMIT
_REPR.maxlong = 24
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = 4


def shown(value: object) -> str:
    """``repr(value)`` cut to about :data:`ECHO_LIMIT` characters: for errors and logs of outside values."""
    text = _REPR.repr(value)
    if len(text) > 2 * ECHO_LIMIT:  # reprlib bounds each part; nesting may still add up
        text = text[: 2 * ECHO_LIMIT] + "..."
    return text


def bounded(text: str, limit: int = 4 * ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (a path or a message from outside, shown as is)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def is_name(value: object) -> bool:
    """Whether ``value`` is a safe job name (the whole string)."""
    return isinstance(value, str) and NAME_PATTERN.match(value) is not None


def validate_name(name: object) -> str:
    """Return ``name`` if it is a safe job name, else raise :class:`BadRequest`."""
    if not is_name(name):
        raise BadRequest(
            f"Job name {shown(name)} is not allowed: use 1-128 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit."
        )
    assert isinstance(name, str)
    return name


def validate_jobid(jobid: object) -> str:
    """Return ``jobid`` as a string if it is a plausible downstream id, else raise :class:`BadRequest`.

    An id of digits only must also be below 2**63 (what SQLite and 64-bit fields hold).
    """
    if isinstance(jobid, int) and not isinstance(jobid, bool) and 0 <= jobid <= MAX_INT64:
        jobid = str(jobid)
    if (
        not isinstance(jobid, str)
        or not JOBID_PATTERN.match(jobid)
        or (jobid.isascii() and jobid.isdigit() and int(jobid) > MAX_INT64)
    ):
        raise BadRequest(f"Job id {shown(jobid)} is not a valid job id.")
    return jobid


def numeric_id(jobid: str, maximum: int = MAX_INT64) -> int | None:
    """A job id of ASCII digits as an integer (None when it is not one, or above ``maximum``)."""
    if not _INTEGER.match(jobid) or jobid.startswith("-"):
        return None
    value = int(jobid)
    return value if value <= maximum else None


def parse_int(value: object, what: str, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    """An integer from JSON or text (ASCII digits, surrounding blanks allowed), within bounds.

    ``what`` names the value in the error, e.g. ``"nodes"``.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INTEGER.match(value.strip(" \t")):
        number = int(value.strip(" \t"))
    if number is None or not minimum <= number <= maximum:
        raise BadRequest(f"{what} must be an integer from {minimum} to {maximum}, not {shown(value)}.")
    return number


def validate_number(number: object) -> int:
    """The upstream's job number, sent as an integer or a string of digits."""
    return parse_int(number, "Job number", 0, MAX_NUMBER)


def validate_nodes(nodes: object) -> int:
    """A node count: an integer from 1 to :data:`MAX_NODES` (connectors may allow fewer)."""
    return parse_int(nodes, "nodes", 1, MAX_NODES)


def decode_base64_text(value: str) -> str:
    """Base64 (ASCII, blanks around allowed) -> UTF-8 text; ``ValueError`` for anything else.

    ``base64.b64decode`` raises ``ValueError`` (not ``binascii.Error``) for non-ASCII text.
    """
    text = value.strip()
    if not text.isascii():
        raise ValueError("not ASCII")
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not base64 of UTF-8 text") from None


def script_lines(text: str) -> list[str]:
    """The lines of a script as bash reads them: split on ``\\n`` only.

    ``str.splitlines`` also splits on form feed, ``\\x1c``-``\\x1e``, ``\\x85``,
    ``\\u2028``...; a key reader using it sees lines bash (and a redaction
    splitting on ``\\n``) does not.
    """
    return text.split("\n")
