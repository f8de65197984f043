"""The legacy wire format (LEGACY_API.md): request ``args`` -> the job model, the model -> answers.

Plain functions, no Flask: :mod:`dssr_server.legacy` calls them between the
HTTP request and one :class:`~dssr_core.Downstream` call.  Every malformed
value is a :class:`~dssr_core.BadRequest` naming it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from dssr_core import BadRequest, ExitStatus, FileEntry, JobInfo, JobRef, JobSpec, JobStatus, shown
from dssr_core._upstream import parse_template
from dssr_core._validate import (
    bounded,
    decode_base64_text,
    parse_int,
    validate_jobid,
    validate_name,
    validate_nodes,
    validate_number,
)

#: ``/runstatus`` of a job that is neither queued nor running
NO_STATUS: list[None] = [None, None, None, None]


def args_object(raw: str | None) -> dict[str, Any]:
    """The form field ``args`` (its text; None when absent) as a JSON object."""
    if raw is None:
        raise BadRequest("The request has no form field 'args': send args=<JSON object>, form-encoded.")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The form field 'args' is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest(f"The form field 'args' must be a JSON object, not {_json_kind(value)}.")
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


def truthy(value: object) -> bool:
    """A flag such as ``force``: true, 1, ``"true"``, ``"1"``, ``"yes"``; anything else is false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and value == 1)


def query(args: Mapping[str, Any]) -> Mapping[str, Any]:
    """``args.qs`` of ``/request/<path>``: an object of lists, like a parsed query string (absent: empty)."""
    qs = args.get("qs", {})
    if qs is None:
        return {}
    if not isinstance(qs, dict):
        raise BadRequest("args.qs must be an object of lists, like a parsed query string.")
    return qs


def qs_first(qs: Mapping[str, Any], key: str) -> str | None:
    """The first value of ``qs[key]`` (a parsed query string: lists of strings)."""
    value = qs.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"qs.{key} must be a list of strings, not {shown(value)}.")
    return str(value)


def tail_lines(qs: Mapping[str, Any]) -> int:
    """``qs.lines[0]`` of ``tail`` (default 100)."""
    raw = qs_first(qs, "lines")
    return 100 if raw is None else parse_int(raw, "qs.lines", 1)


def pvcls_request(qs: Mapping[str, Any]) -> tuple[str, bool]:
    """(folder, details) of ``pvcls``: ``qs.path[0]`` (default ``/``), ``qs.details[0] == "true"``."""
    return qs_first(qs, "path") or "/", (qs_first(qs, "details") or "").lower() == "true"


def job_ref(args: Mapping[str, Any]) -> JobRef:
    """The job named by ``args`` (``name``, ``number``, ``jobid``; other keys ignored)."""
    for key in ("name", "number", "jobid"):
        if key not in args:
            raise BadRequest(f"The request has no {key!r}: 'name', 'number' and 'jobid' are required.")
    return JobRef(validate_name(args["name"]), validate_number(args["number"]), validate_jobid(args["jobid"]))


def decode_template(hpc_script: object, key: str) -> str:
    """The template text of ``hpc_script[key]`` (base64 of UTF-8 text)."""
    if not isinstance(hpc_script, Mapping):
        raise BadRequest("hpc_script must be an object mapping an executor name to a base64 script.")
    if key not in hpc_script:
        sent = bounded(", ".join(sorted(str(k) for k in hpc_script))) or "none"
        raise BadRequest(f"hpc_script has no entry {key!r} for this downstream's executor (the upstream sent: {sent}).")
    value = hpc_script[key]
    if not isinstance(value, str):
        raise BadRequest(f"hpc_script[{key!r}] must be a base64 string.")
    try:
        return decode_base64_text(value)
    except ValueError:
        raise BadRequest(f"hpc_script[{key!r}] is not valid base64-encoded UTF-8 text.") from None


def parse_submission(args: Mapping[str, Any], script_key: str) -> JobSpec:
    """A ``/submit`` ``args`` object -> :class:`~dssr_core.JobSpec` (the bearer token is not read here)."""
    for key in ("name", "number", "nodes", "hpc_script"):
        if key not in args:
            raise BadRequest(f"The submission has no {key!r}.")
    name = validate_name(args["name"])
    number = validate_number(args["number"])
    nodes = validate_nodes(args["nodes"])
    text = decode_template(args["hpc_script"], script_key)
    return parse_template(text, nodes, name, number)


def job_list(jobs: Sequence[JobStatus]) -> list[list[str]]:
    """``/running``, ``/queued``: ``[[name, jobid], ...]``."""
    return [[job.ref.name, job.ref.jobid] for job in jobs]


def request_prefix(ref: JobRef) -> str:
    """``name/number/jobid``: the prefix the upstream uses later in ``/request/<prefix>/<method>``."""
    return f"{ref.name}/{ref.number}/{ref.jobid}"


def runstatus_answer(ref: JobRef, status: JobStatus | None) -> list[Any]:
    """``[nodes, elapsed, "name/number/jobid", null]``, or four nulls for a job neither queued nor running."""
    if status is None:
        return list(NO_STATUS)
    return [list(status.nodes), status.elapsed, request_prefix(ref), None]


def exitstatus_answer(status: ExitStatus) -> list[Any]:
    """``[rc, elapsed, [stdout, termination_line]]``."""
    return [status.rc, status.elapsed, [status.output, status.termination_line]]


def info_answer(info: JobInfo) -> dict[str, Any]:
    """``{"about": "", "help": "", "url": "", "actions": {}}``, ``url``/``help`` set once known."""
    return {"about": "", "help": info.help or "", "url": info.url or "", "actions": {}}


def pvcls_line(entry: FileEntry, details: bool) -> str:
    """One ``pvcls`` line: ``/data/PATH`` (folders end with ``/``), with details ``MTIME SIZE /data/PATH``."""
    path = entry.path if entry.path.startswith("/") else "/" + entry.path
    if entry.is_dir and not path.endswith("/"):
        path += "/"
    shown = "/data" + path
    return f"{entry.mtime} {entry.size} {shown}" if details else shown
