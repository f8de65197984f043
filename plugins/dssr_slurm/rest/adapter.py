"""What differs between REST API versions, behind one interface; helpers for field shapes."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from dssr_core import BadRequest
from dssr_core.batch import PREFIX, QueuedJob, expand_nodelist, format_seconds

from ..backend import AcctRecord, BatchRequest
from ..shape import Node, Partition, Shape, gpu_count

#: base states after which a job is no longer in slurmctld's queue (squeue's default view)
FINAL_STATES = frozenset(
    {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"}
)
#: state flags that squeue shows instead of the base state, in its order of precedence
STATE_FLAGS = (
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
)
#: states whose elapsed time runs until now
_RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "RESIZING", "SIGNALING", "STAGE_OUT"})


class Adapter(ABC):
    """One REST API version family: request bodies in, :mod:`dssr_slurm.backend` records out."""

    #: ``v0.0.38``...
    version: str

    def __init__(self, version: str) -> None:
        self.version = version

    @property
    def slurm(self) -> str:
        return f"/slurm/{self.version}"

    @property
    def slurmdb(self) -> str:
        return f"/slurmdb/{self.version}"

    @abstractmethod
    def submit_body(self, request: BatchRequest) -> dict[str, Any]:
        """The ``POST job/submit`` body; raises BadRequest for what this version cannot express."""

    def acct(self, item: Mapping[str, Any]) -> AcctRecord:
        """One entry of ``GET /slurmdb/.../jobs`` (``state.current`` a string or a list; ``CANCELLED by 0`` -> ``CANCELLED``)."""
        state = item.get("state")
        current = state.get("current") if isinstance(state, Mapping) else state
        times = item.get("time")
        seconds = number(times.get("elapsed")) if isinstance(times, Mapping) else None
        return AcctRecord(
            jobid=str(item.get("job_id", "")),
            name=str(item.get("name", "")),
            user=str(item.get("user", "")),
            state=state_name(current or "UNKNOWN").split(" ")[0],
            elapsed=format_seconds(seconds or 0),
            exit_code=self.exit_code(item),
            submitted=_time(times, "submission"),
            started=_time(times, "start"),
            ended=_time(times, "end"),
        )

    def release_body(self) -> dict[str, Any]:
        """The ``POST job/{id}`` body lifting a user hold, for the job's owner and for a coordinator
        (tried on v0.0.38 with Slurm 22.05 and v0.0.40-42 with 24.11)."""
        return {"hold": False}

    @abstractmethod
    def exit_code(self, item: Mapping[str, Any]) -> str:
        """``rc:signal`` of one job entry (slurmctld's or slurmdbd's)."""

    @abstractmethod
    def state(self, item: Mapping[str, Any]) -> str:
        """squeue's long state name of one ``GET jobs`` entry."""

    @abstractmethod
    def pinged(self, body: Mapping[str, Any]) -> bool:
        """True when the ``GET ping`` answer says a slurmctld is up."""

    def job(self, item: Mapping[str, Any], now: float) -> QueuedJob:
        """One entry of ``GET jobs`` / ``GET job/{id}``."""
        state = self.state(item)
        return QueuedJob(
            jobid=str(item.get("job_id", "")),
            name=str(item.get("name", "")),
            user=str(item.get("user_name", "")),
            state=state,
            elapsed=elapsed(item, state, now),
            nodes=nodes(item),
            reason=reason(item),
            submitted=_time(item, "submit_time"),
            started=_time(item, "start_time"),
            ended=_time(item, "end_time"),
            comment=comment if isinstance(comment := item.get("comment"), str) else "",
        )

    def show_fields(self, item: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``scontrol show job``-like (key, value) pairs of one job."""
        job = self.job(item, time.time())
        return [
            ("JobId", job.jobid),
            ("JobName", job.name),
            ("UserId", job.user),
            ("Account", str(item.get("account", ""))),
            ("JobState", job.state),
            ("Reason", job.reason or "None"),
            ("Partition", str(item.get("partition", ""))),
            ("NumNodes", str(number(item.get("node_count")) or len(job.nodes) or "")),
            ("NumTasks", str(number(item.get("tasks")) or "")),
            ("NodeList", str(item.get("nodes") or "(null)")),
            ("RunTime", job.elapsed),
            ("TimeLimit", limit_text(item.get("time_limit"))),
            ("SubmitTime", epoch_text(item.get("submit_time"))),
            ("StartTime", epoch_text(item.get("start_time"))),
            ("EndTime", epoch_text(item.get("end_time"))),
            ("ExitCode", self.exit_code(item)),
            ("WorkDir", str(item.get("current_working_directory", ""))),
            ("StdOut", str(item.get("standard_output", ""))),
        ]

    def accounting_query(self, jobids: Iterable[str]) -> str:
        """The path + query listing the accounting records of ``jobids`` (one call).

        ``step=ID,ID`` with the commas encoded: v0.0.38 (22.05) refuses a raw comma."""
        return f"{self.slurmdb}/jobs?" + urlencode({"step": ",".join(jobids)})

    def queue(self, body: Mapping[str, Any], now: float | None = None) -> list[QueuedJob]:
        """The jobs of this downstream still in the queue (squeue's default view)."""
        now = time.time() if now is None else now
        return [job for item in body.get("jobs") or [] if (job := self.queued(item, now)) is not None]

    def queued(self, item: Any, now: float) -> QueuedJob | None:
        """One entry of ``GET jobs`` as a job of :meth:`queue` (None: not this downstream's, or ended)."""
        if not isinstance(item, Mapping) or not str(item.get("name", "")).startswith(PREFIX):
            return None
        job = self.job(item, now)
        return job if job.state not in FINAL_STATES else None


# --- field shapes ---------------------------------------------------------------------------


def number(value: Any) -> int | None:
    """A plain int or a ``{"set", "infinite", "number"}`` object -> int (None when unset or infinite)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, Mapping):
        if value.get("infinite") or value.get("set") is False:
            return None
        return number(value.get("number"))
    return None


def _time(item: Any, key: str) -> float | None:
    """A time of a job entry (an int, or ``{set, infinite, number}`` from v0.0.40 on) in seconds since the
    epoch; None when unset or 0 (Slurm's "not yet")."""
    seconds = number(item.get(key)) if isinstance(item, Mapping) else None
    return float(seconds) if seconds is not None and seconds > 0 else None


def state_name(value: Any) -> str:
    """``"RUNNING"`` or ``["PENDING", "REQUEUED"]`` -> the long name squeue would print."""
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, list) and value:
        words = [str(v).upper() for v in value]
        for flag in STATE_FLAGS:
            if flag in words[1:]:
                return flag
        return words[0]
    return "UNKNOWN"


def base_state(value: Any) -> str:
    """The base state (first of a list; squeue's name for a string)."""
    if isinstance(value, list) and value:
        return str(value[0]).upper()
    return state_name(value)


def elapsed(item: Mapping[str, Any], state: str, now: float) -> str:
    """``HH:MM:SS`` used so far: from start to now while running, to the end afterwards."""
    start = number(item.get("start_time")) or 0
    if start <= 0 or state == "PENDING":
        return "00:00:00"
    end = number(item.get("end_time")) or 0
    if state in _RUNNING_STATES or state == "SUSPENDED" or end <= start:
        stop = now
    else:
        stop = min(end, now)
    return format_seconds(stop - start)


def nodes(item: Mapping[str, Any]) -> tuple[str, ...]:
    text = item.get("nodes")
    return tuple(expand_nodelist(text if isinstance(text, str) else ""))


def reason(item: Mapping[str, Any]) -> str:
    text = item.get("state_reason")
    return "" if not isinstance(text, str) or text == "None" else text


_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?\Z")


def minutes(limit: str) -> int | None:
    """A Slurm time limit (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in whole minutes,
    seconds rounded up; None for ``UNLIMITED``/``INFINITE``."""
    text = limit.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "-1"):
        return None
    match = _TIME.match(text)
    if not match:
        raise BadRequest(f"Time limit {limit!r} is not a Slurm time (e.g. 30, 01:00:00, 1-00:00:00).")
    d, b, c = (int(g) if g is not None else None for g in match.group("d", "b", "c"))
    a = int(match["a"])
    if d is not None:  # D-H, D-H:M, D-H:M:S
        seconds = d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # H:M:S
        seconds = a * 3600 + (b or 0) * 60 + c
    elif b is not None:  # M:S
        seconds = a * 60 + b
    else:  # M
        seconds = a * 60
    return -(-seconds // 60)


def scontrol_text(pairs: list[tuple[str, str]]) -> str:
    """``Key=Value`` pairs laid out as ``scontrol show job`` does (a few per line)."""
    lines, line = [], []
    for key, value in pairs:
        line.append(f"{key}={value}")
        if len(line) == 4:
            lines.append("   " + " ".join(line))
            line = []
    if line:
        lines.append("   " + " ".join(line))
    if lines:
        lines[0] = lines[0].lstrip()
    return "\n".join(lines) + "\n"


def epoch_text(value: Any) -> str:
    seconds = number(value)
    if not seconds:
        return "Unknown"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds))


def limit_text(value: Any) -> str:
    if isinstance(value, Mapping) and value.get("infinite"):
        return "UNLIMITED"
    mins = number(value)
    return "UNLIMITED" if mins is None else format_seconds(mins * 60)


def shape_of(nodes_body: Mapping[str, Any], partitions_body: Mapping[str, Any]) -> Shape:
    """From the answers of ``GET nodes`` and ``GET partitions`` (every version v0.0.38-v0.0.45)."""
    nodes = tuple(_node(item) for item in nodes_body.get("nodes") or [] if isinstance(item, Mapping))
    parts = (_partition(item) for item in partitions_body.get("partitions") or [] if isinstance(item, Mapping))
    return Shape(nodes, {p.name: p for p in parts if p.name})


def _node(item: Mapping[str, Any]) -> Node:
    gres = item.get("gres")
    kept = number(item.get("specialized_memory")) or 0
    partitions = item.get("partitions")
    return Node(
        name=str(item.get("name", "")),
        cpus=number(item.get("cpus")) or 0,
        memory_mb=(number(item.get("real_memory")) or 0) - kept,
        gpus=gpu_count(gres) if isinstance(gres, str) else 0,
        partitions=tuple(str(p) for p in partitions) if isinstance(partitions, list) else (),
    )


def _partition(item: Mapping[str, Any]) -> Partition:
    flags = item.get("flags")
    if isinstance(item.get("maximums"), Mapping):  # v0.0.40 and later
        max_nodes = number(item["maximums"].get("nodes"))
        minimums = item.get("minimums")
        min_nodes = number(minimums.get("nodes")) if isinstance(minimums, Mapping) else None
        states = item.get("partition", {}).get("state") if isinstance(item.get("partition"), Mapping) else None
        default = isinstance(states, list) and "DEFAULT" in states
    else:  # v0.0.38
        max_nodes = number(item.get("maximum_nodes_per_job"))
        min_nodes = number(item.get("min nodes per job"))
        default = False
    default = default or (isinstance(flags, list) and any(str(f).upper() == "DEFAULT" for f in flags))
    return Partition(
        name=str(item.get("name", "")),
        default=default,
        min_nodes=min_nodes or 0,
        max_nodes=max_nodes if max_nodes is not None and max_nodes >= 0 else None,
    )
