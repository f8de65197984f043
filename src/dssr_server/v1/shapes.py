"""``/v1``'s JSON: a native job spec in, jobs, ends and the cluster out; the job id in URLs.

A job's ``/v1`` id is ``NAME:NUMBER:JOBID`` (``jarvice-kirby-42:42:1234``):
the server keeps no job database, so the id carries what the connector needs
to find the job even after it has left the scheduler's queue.  Plain
functions, no Flask; every bad value is an :class:`~dssr_core.Unprocessable`
naming its field (or a :class:`~dssr_core.NotFound` for an id that cannot be
a job's).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from dssr_core import (
    BadRequest,
    ClusterInfo,
    ExitStatus,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    NotFound,
    Submission,
    Unprocessable,
    shown,
)
from dssr_core._validate import numeric_id, validate_jobid, validate_name, validate_number

_WALLTIME = re.compile(r"\A(\d{1,4}-)?\d{1,5}(:\d{1,2}){0,2}\Z")
_WORD = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}\Z")
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_IMAGE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,511}\Z")
MAX_COMMAND = 65536
#: field -> (type, required)
_FIELDS: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "command": (str, True),
    "number": (int, False),
    "nodes": (int, False),
    "cores": (int, False),
    "gpus": (int, False),
    "memory_gb": (int, False),
    "walltime": (str, False),
    "partition": (str, False),
    "exclusive": (bool, False),
    "held": (bool, False),
    "image": (str, False),
    "environment": (dict, False),
}
_TYPE_WORDS = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object"}


def job_id(ref: JobRef) -> str:
    return f"{ref.name}:{ref.number}:{ref.jobid}"


def parse_id(text: str) -> JobRef:
    """The job a ``/v1`` id names; NotFound when it cannot name one."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise BadRequest("")
        return JobRef(validate_name(parts[0]), validate_number(parts[1]), validate_jobid(parts[2]))
    except BadRequest:
        raise NotFound(f"No job has the id {shown(text)} (a job id is NAME:NUMBER:JOBID).") from None


def parse_spec(body: object) -> JobSpec:
    """A ``POST /v1/jobs`` body -> a native :class:`~dssr_core.JobSpec`."""
    if not isinstance(body, dict):
        raise Unprocessable("The request body must be a JSON object (a job spec).")
    for key in body:
        if key not in _FIELDS:
            raise Unprocessable(f"Unknown field {shown(key)} in the job spec.", field=str(key)[:64])
    for key, (kind, required) in _FIELDS.items():
        if key not in body or body[key] is None:
            if required:
                raise Unprocessable(f"The job spec has no {key!r}.", field=key)
            continue
        value = body[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise Unprocessable(f"{key} must be {_TYPE_WORDS[kind]}, not {shown(value)}.", field=key)
    _check_words(body)
    values = {key: body[key] for key in _FIELDS if body.get(key) is not None}
    values["environment"] = dict(values.get("environment", {}))
    try:
        return JobSpec(**values)
    except BadRequest as exc:
        raise Unprocessable(exc.message, field=_field_of(exc.message)) from None


def _check_words(body: Mapping[str, Any]) -> None:
    try:
        validate_name(body["name"])
    except BadRequest as exc:
        raise Unprocessable(exc.message, field="name") from None
    command = body["command"]
    if not command.strip() or len(command) > MAX_COMMAND or "\0" in command:
        raise Unprocessable(
            f"command must be a non-empty shell command line of at most {MAX_COMMAND} characters.", field="command"
        )
    for key, pattern in (("walltime", _WALLTIME), ("partition", _WORD), ("image", _IMAGE)):
        value = body.get(key)
        if value is not None and not pattern.match(value):
            raise Unprocessable(f"{key} {shown(value)} is not valid.", field=key)
    for env_name, env_value in (body.get("environment") or {}).items():
        if not _ENV_NAME.match(env_name):
            raise Unprocessable(f"environment name {shown(env_name)} is not a variable name.", field="environment")
        if not isinstance(env_value, str) or "\0" in env_value:
            raise Unprocessable(f"environment[{env_name}] must be a string.", field="environment")


def _field_of(message: str) -> str | None:
    word = message.split(" ", 1)[0]
    return word if word in _FIELDS else None


def submitted(ref: JobRef, submission: Submission) -> dict[str, Any]:
    return {
        "id": job_id(ref),
        "name": ref.name,
        "number": ref.number,
        "jobid": submission.jobid,
        "existed": submission.existed,
    }


def live_job(status: JobStatus) -> dict[str, Any]:
    """A queued or running job."""
    return {
        "id": job_id(status.ref),
        "name": status.ref.name,
        "number": status.ref.number,
        "jobid": status.ref.jobid,
        "state": status.state.value,
        "owner": status.owner,
        "nodes": list(status.nodes),
        "elapsed": status.elapsed,
        "scheduler_state": status.detail,
        "reason": status.reason or None if status.state is JobState.QUEUED else None,
        "exit_code": None,
        "rc": None,
        "submitted": when(status.submitted),
        "started": when(status.started) if status.state is not JobState.QUEUED else None,
        "ended": None,
    }


def ended_job(end: ExitStatus) -> dict[str, Any]:
    """A job that has ended (as accounting has it)."""
    return {
        "id": job_id(end.ref),
        "name": end.ref.name,
        "number": end.ref.number,
        "jobid": end.ref.jobid,
        "state": end.state.value,
        "owner": end.owner,
        "nodes": [],
        "elapsed": end.elapsed,
        "scheduler_state": end.end_state,
        "reason": None,
        "exit_code": end.exit_code,
        "rc": end.rc,
        "submitted": when(end.submitted),
        "started": when(end.started),
        "ended": when(end.ended),
    }


def when(seconds: float | None) -> str | None:
    """Seconds since the epoch -> ISO 8601 UTC (``2026-12-02T03:58:01Z``); None (or 0: a scheduler's "not
    yet") -> None."""
    if not seconds or seconds < 0:
        return None
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster_answer(info: ClusterInfo) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {
            "name": n.name,
            "state": n.state,
            "partitions": list(n.partitions),
            "cpus": {"total": n.cpus, "free": n.free_cpus},
            "gpus": {"total": n.gpus, "free": n.free_gpus},
            "memory_mb": {"total": n.memory_mb, "free": n.free_memory_mb},
        }
        for n in info.nodes
    ]
    totals = {
        key: {"total": sum(n[key]["total"] for n in nodes), "free": sum(n[key]["free"] for n in nodes)}
        for key in ("cpus", "gpus", "memory_mb")
    }
    partitions = [
        {"name": p.name, "state": p.state, "default": p.default, "nodes": list(p.nodes)} for p in info.partitions
    ]
    return {"partitions": partitions, "nodes": nodes, "totals": totals}


def sort_key(status: JobStatus) -> tuple[int, str]:
    number = numeric_id(status.ref.jobid)
    return (number if number is not None else -1, status.ref.jobid)


def cursor_of(status: JobStatus) -> str:
    return base64.urlsafe_b64encode(status.ref.jobid.encode()).decode().rstrip("=")


def after_cursor(cursor: str) -> tuple[int, str]:
    """The sort key a cursor stands for (listing resumes after it)."""
    try:
        jobid = validate_jobid(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
    except (ValueError, binascii.Error, BadRequest):
        raise BadRequest(f"cursor {shown(cursor)} is not a cursor this server gave.") from None
    number = numeric_id(jobid)
    return (number if number is not None else -1, jobid)
