"""REST API v0.0.39 to v0.0.42 (Slurm 23.02 to 24.11): typed fields, numbers as ``{set, infinite, number}``.

One class per version that changed something; each holds only that change."""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from ..backend import BatchRequest
from .adapter import Adapter, minutes, number, state_name
from .v0038 import DEFAULT_PATH, extra_fields

#: extra sbatch flags with a job field of their own in these versions (value sent as text)
EXTRA_FLAGS = {
    "account": "account",
    "qos": "qos",
    "reservation": "reservation",
    "constraint": "constraints",
    "comment": "comment",
    "mail-user": "mail_user",
    "dependency": "dependency",
    "wckey": "wckey",
    "distribution": "distribution",
    "exclude": "excluded_nodes",
    "nodelist": "required_nodes",
}
#: extra sbatch flags whose job field is a number
EXTRA_NUMBERS = {
    "nice": "nice",
    "cpus-per-task": "cpus_per_task",
    "ntasks-per-node": "tasks_per_node",
    "threads-per-core": "threads_per_core",
    "cores-per-socket": "cores_per_socket",
    "sockets-per-node": "sockets_per_node",
}


def _set(value: int) -> dict[str, Any]:
    return {"set": True, "infinite": False, "number": value}


class V0039(Adapter):
    """v0.0.39: ``job_state`` a list, exit codes objects, environment a list of ``K=V``; the script beside
    the job; the update body wrapped in ``{"job": ...}``."""

    def submit_body(self, request: BatchRequest) -> dict[str, Any]:
        environment = dict(request.environment)
        environment.setdefault("PATH", DEFAULT_PATH)
        job: dict[str, Any] = {
            "name": request.name,
            "minimum_nodes": request.nodes,
            "maximum_nodes": request.nodes,
            "tasks": request.ntasks,
            "current_working_directory": request.workdir,
            "standard_output": request.output,
            "environment": [f"{key}={value}" for key, value in environment.items()],
        }
        if request.exclusive:
            job["shared"] = ["none"]
        if request.memory_gb:
            job["memory_per_node"] = _set(request.memory_gb * 1024)
        if request.gpus_per_node:
            job["tres_per_node"] = f"gres/gpu:{request.gpus_per_node}"
        if request.time_limit:
            limit = minutes(request.time_limit)
            job["time_limit"] = {"set": True, "infinite": True} if limit is None else _set(limit)
        if request.partition:
            job["partition"] = request.partition
        if request.licenses:
            job["licenses"] = request.licenses
        if request.hold:
            job["hold"] = True
        numeric = {flag: value for flag, value in request.extra.items() if flag in EXTRA_NUMBERS}
        textual = {flag: value for flag, value in request.extra.items() if flag not in EXTRA_NUMBERS}
        job.update(extra_fields(textual, {**EXTRA_FLAGS, **EXTRA_NUMBERS}, self.version))
        for flag, value in numeric.items():
            job[EXTRA_NUMBERS[flag]] = _integer(flag, value)
        return self.wrap(request.script, job)

    def wrap(self, script: str, job: dict[str, Any]) -> dict[str, Any]:
        """The submit body around the job's fields."""
        return {"script": script, "job": job}

    def state(self, item: Mapping[str, Any]) -> str:
        return state_name(item.get("job_state"))

    def exit_code(self, item: Mapping[str, Any]) -> str:
        code = item.get("exit_code")
        if not isinstance(code, Mapping):
            return f"{number(code) or 0}:0"
        signal = code.get("signal")
        sig = number(signal.get("id")) if isinstance(signal, Mapping) else None
        return f"{number(code.get('return_code')) or 0}:{sig or 0}"

    def accounting_query(self, jobids: Iterable[str]) -> str:
        """``step`` repeated once per id: these versions read repeated keys as a list (24.11 refuses
        a comma, raw or encoded)."""
        return f"{self.slurmdb}/jobs?" + urlencode([("step", jobid) for jobid in jobids])

    def release_body(self) -> dict[str, Any]:
        return {"job": {"hold": False}}

    def pinged(self, body: Mapping[str, Any]) -> bool:
        pings = body.get("pings") or []
        return any(
            isinstance(p, Mapping) and (p.get("responding") is True or str(p.get("pinged", "")).upper() == "UP")
            for p in pings
        )


class V0040(V0039):
    """v0.0.40: the update body is flat."""

    def release_body(self) -> dict[str, Any]:
        return {"hold": False}


class V0041(V0040):
    """v0.0.41: the top-level ``script`` is deprecated; the script goes in ``job.script``."""

    def wrap(self, script: str, job: dict[str, Any]) -> dict[str, Any]:
        return {"job": {**job, "script": script}}


def _integer(flag: str, value: str) -> int:
    from dssr_core import BadRequest

    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"The scheduler flag --{flag}={value!r} needs an integer.") from None
