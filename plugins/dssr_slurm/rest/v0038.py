"""REST API v0.0.38 (Slurm 22.05): job fields are sbatch options, values plain."""

from __future__ import annotations

from typing import Any, Mapping

from dssr_core import BadRequest

from ..backend import BatchRequest
from .adapter import Adapter, minutes, number

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

#: extra sbatch flags this version takes, -> the job field (sbatch's own parser reads the value)
EXTRA_FLAGS = {
    "account": "account",
    "qos": "qos",
    "reservation": "reservation",
    "constraint": "constraints",
    "comment": "comment",
    "mail-user": "mail_user",
    "mail-type": "mail_type",
    "nice": "nice",
    "dependency": "dependency",
    "begin": "begin_time",
    "exclude": "exclude_nodes",
    "nodelist": "nodelist",
    "cpus-per-task": "cpus_per_task",
    "ntasks-per-node": "tasks_per_node",
    "mem-per-cpu": "memory_per_cpu",
    "gres": "gres",
    "wckey": "wckey",
    "time-min": "time_minimum",
    "distribution": "distribution",
    "threads-per-core": "threads_per_core",
    "cores-per-socket": "cores_per_socket",
    "sockets-per-node": "sockets_per_node",
    "signal": "signal",
    "tmp": "temporary_disk_per_node",
}


def extra_fields(extra: Mapping[str, str], table: Mapping[str, str], version: str) -> dict[str, str]:
    fields = {}
    for flag, value in extra.items():
        key = table.get(flag)
        if key is None:
            raise BadRequest(
                f"The scheduler flag --{flag} cannot be sent through slurmrestd ({version}); "
                f"flags it takes: {', '.join(sorted(table))}."
            )
        fields[key] = value
    return fields


class V0038(Adapter):
    """v0.0.38: ``{"script", "job"}``; environment an object; states strings; exit codes ints."""

    def submit_body(self, request: BatchRequest) -> dict[str, Any]:
        environment = dict(request.environment)
        environment.setdefault("PATH", DEFAULT_PATH)
        job: dict[str, Any] = {
            "name": request.name,
            "nodes": request.nodes,
            "tasks": request.ntasks,
            "current_working_directory": request.workdir,
            "standard_output": request.output,
            "environment": environment,
        }
        if request.exclusive:
            job["exclusive"] = "exclusive"
        if request.memory_gb:
            job["memory_per_node"] = f"{request.memory_gb}G"
        if request.gpus_per_node:
            job["gpus_per_node"] = str(request.gpus_per_node)
        if request.time_limit:
            limit = minutes(request.time_limit)
            job["time_limit"] = "UNLIMITED" if limit is None else limit
        if request.partition:
            job["partition"] = request.partition
        if request.licenses:
            job["licenses"] = request.licenses
        if request.hold:
            job["hold"] = True
        job.update(extra_fields(request.extra, EXTRA_FLAGS, self.version))
        return {"script": request.script, "job": job}

    def state(self, item: Mapping[str, Any]) -> str:
        return str(item.get("job_state", "UNKNOWN")).upper()

    def exit_code(self, item: Mapping[str, Any]) -> str:
        code = item.get("exit_code")
        if isinstance(code, Mapping):  # slurmdbd: {"status", "return_code", "signal": {"signal_id", "name"}}
            signal = code.get("signal")
            sig = number(signal.get("signal_id")) if isinstance(signal, Mapping) else None
            return f"{number(code.get('return_code')) or 0}:{sig or 0}"
        raw = number(code) or 0  # slurmctld: the wait status
        return f"{(raw >> 8) & 0xFF}:{raw & 0x7F}"

    def pinged(self, body: Mapping[str, Any]) -> bool:
        pings = body.get("pings") or []
        return any(isinstance(p, Mapping) and str(p.get("ping", "")).upper() == "UP" for p in pings)
