"""The cluster's partitions and nodes (``GET /v1/cluster``) from ``scontrol -o`` text or slurmrestd's JSON.

Free CPUs are ``CPUTot - CPUAlloc``; free memory is what is not allocated
(``RealMemory - AllocMem``, MB), not what the OS has free; GPUs are the
``gres/gpu`` counts of ``CfgTRES`` and ``AllocTRES`` where accounting tracks
them, else the ``gpu`` entries of ``Gres``/``GresUsed`` (``scontrol -d``; over
REST ``gres``/``gres_used``).  Values Slurm does not give read as 0.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from dssr_core import ClusterInfo, NodeInfo, PartitionInfo
from dssr_core.batch import expand_nodelist

#: the keys read from an ``scontrol -o show node`` line (other values may hold spaces: OS=, Reason=)
_NODE_KEYS = (
    "NodeName",
    "CPUTot",
    "CPUAlloc",
    "RealMemory",
    "AllocMem",
    "State",
    "Partitions",
    "CfgTRES",
    "AllocTRES",
    "Gres",
    "GresUsed",
)
_PART_KEYS = ("PartitionName", "Nodes", "State", "Default")


def _pairs(line: str, keys: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in keys:
        match = re.search(rf"(?:^|\s){key}=(\S*)", line)
        if match:
            found[key] = match[1]
    return found


def _int(text: object) -> int:
    return int(text) if isinstance(text, str) and text.isdigit() else 0


def _tres_gpus(text: str) -> int:
    """``gres/gpu=N`` of a TRES list (``cpu=2,mem=1000M,gres/gpu=2``); typed GPUs (``gres/gpu:a100=1``) are
    counted in the untyped total Slurm also lists."""
    match = re.search(r"(?:^|,)gres/gpu=(\d+)", text)
    return int(match[1]) if match else 0


def parse_scontrol(nodes_text: str, partitions_text: str) -> ClusterInfo:
    """``scontrol -o show nodes`` and ``scontrol -o show partitions`` (one record per line)."""
    nodes = []
    for line in nodes_text.splitlines():
        values = _pairs(line, _NODE_KEYS)
        if "NodeName" not in values:
            continue
        cpus, memory = _int(values.get("CPUTot")), _int(values.get("RealMemory"))
        # GPUs are TRES only where accounting tracks gres/gpu: else Gres= and GresUsed= (scontrol -d) say them
        gpus = max(_tres_gpus(values.get("CfgTRES", "")), _gres_gpus(values.get("Gres")))
        used = max(_tres_gpus(values.get("AllocTRES", "")), _gres_gpus(values.get("GresUsed")))
        parts = values.get("Partitions", "")
        nodes.append(
            NodeInfo(
                name=values["NodeName"],
                state=values.get("State", "UNKNOWN").lower(),
                partitions=tuple(p for p in parts.split(",") if p and p != "(null)"),
                cpus=cpus,
                free_cpus=max(0, cpus - _int(values.get("CPUAlloc"))),
                gpus=gpus,
                free_gpus=max(0, gpus - used),
                memory_mb=memory,
                free_memory_mb=max(0, memory - _int(values.get("AllocMem"))),
            )
        )
    partitions = []
    for line in partitions_text.splitlines():
        values = _pairs(line, _PART_KEYS)
        if "PartitionName" not in values:
            continue
        members = values.get("Nodes", "")
        partitions.append(
            PartitionInfo(
                name=values["PartitionName"],
                state=values.get("State", "UNKNOWN").lower(),
                nodes=tuple(expand_nodelist(members)) if members and members != "(null)" else (),
                default=values.get("Default", "NO").upper() == "YES",
            )
        )
    return ClusterInfo(partitions=tuple(partitions), nodes=tuple(nodes))


def _number(value: Any) -> int:
    """A plain int or a ``{"set", "infinite", "number"}`` object (v0.0.40+) -> int (0 when unset)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping) and value.get("set", True) and not value.get("infinite"):
        return _number(value.get("number"))
    return 0


def _word(value: Any) -> str:
    """A state: a string (v0.0.38) or a list of flags whose first is the base state (v0.0.40+)."""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "unknown").lower()


def _gres_gpus(text: Any) -> int:
    """GPUs of a ``gres`` / ``gres_used`` string: ``gpu:2``, ``gpu:a100:2(S:0)``, ``gpu:(null):1(IDX:0)``."""
    total = 0
    for entry in str(text or "").split(","):
        match = re.match(r"gpu(?::[^:]*)?:(\d+)", entry.strip())
        if match:
            total += int(match[1])
    return total


def parse_rest(nodes: Iterable[Any], partitions: Iterable[Any]) -> ClusterInfo:
    """The ``nodes`` of ``GET /slurm/vX/nodes`` and the ``partitions`` of ``GET /slurm/vX/partitions``."""
    found = []
    for item in nodes:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        cpus, memory, gpus = _number(item.get("cpus")), _number(item.get("real_memory")), _gres_gpus(item.get("gres"))
        parts = item.get("partitions")
        found.append(
            NodeInfo(
                name=item["name"],
                state=_word(item.get("state")),
                partitions=tuple(str(p) for p in parts) if isinstance(parts, list) else (),
                cpus=cpus,
                free_cpus=max(0, cpus - _number(item.get("alloc_cpus"))),
                gpus=gpus,
                free_gpus=max(0, gpus - _gres_gpus(item.get("gres_used"))),
                memory_mb=memory,
                free_memory_mb=max(0, memory - _number(item.get("alloc_memory"))),
            )
        )
    kept = []
    for item in partitions:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        members = item.get("nodes")
        if isinstance(members, Mapping):  # v0.0.40+: {"configured": "node[1-2]", "total": 2, ...}
            members = members.get("configured")
        inner = item.get("partition")
        state = inner.get("state") if isinstance(inner, Mapping) else item.get("state")
        flags = [str(f).upper() for f in item.get("flags") or () if isinstance(f, str)]
        if isinstance(inner, Mapping):
            flags += [str(f).upper() for f in inner.get("state") or () if isinstance(f, str)]
        kept.append(
            PartitionInfo(
                name=item["name"],
                state=_word(state),
                nodes=tuple(expand_nodelist(members)) if isinstance(members, str) and members else (),
                default="DEFAULT" in flags,
            )
        )
    return ClusterInfo(partitions=tuple(kept), nodes=tuple(found))
