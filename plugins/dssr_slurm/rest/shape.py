"""The cluster as slurmrestd describes it (nodes, partitions), and whether a job could ever run on it.

A job submitted held is not judged against the nodes by slurmctld, and slurmrestd has no
``sbatch --test-only``.  So before a submission the REST backend asks :meth:`Shape.verdict`, from
``GET nodes`` and ``GET partitions`` read once per snapshot: a job no node of its partition could
ever run is refused at once, in Slurm's words (:data:`~dssr_slurm.states.NEVER_RUNS`); a job that
fits is submitted with no further look; only a job this model cannot judge (extra ``sbatch`` flags,
licenses, a partition it does not know, several partitions and no default named) is looked at by
slurmctld after its release, as before.

The model is slurmctld's own test of a request against the nodes' configuration, for what a
:class:`~dssr_slurm.backend.BatchRequest` can ask: the partition's node limits (reason
``PartitionNodeLimit``), enough nodes with the memory and GPUs asked per node (``BadConstraints``),
and enough CPUs on those nodes for every task, one CPU each (``PartitionConfig``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..backend import BatchRequest
from .adapter import number

#: ``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:tesla:2,mps:100``: the count of each ``gpu`` entry
_GPU = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    #: what a job may use: real memory less the memory kept for the system (MB)
    memory_mb: int
    gpus: int
    partitions: tuple[str, ...]


@dataclass(frozen=True)
class Partition:
    name: str
    #: True when slurmrestd says it is the default (v0.0.38 does; v0.0.40-v0.0.42 do not say)
    default: bool
    min_nodes: int
    #: None: no limit
    max_nodes: int | None


@dataclass(frozen=True)
class Verdict:
    """:meth:`Shape.verdict`'s answer."""

    #: False: the model cannot judge this request (slurmctld's look after the release decides)
    decided: bool
    #: the reason slurmctld would give (a key of NEVER_RUNS), None when the job fits
    reason: str | None = None
    #: what does not fit, for the refusal's sentence
    detail: str = ""


UNDECIDED = Verdict(decided=False)
FITS = Verdict(decided=True)


@dataclass(frozen=True)
class Shape:
    nodes: tuple[Node, ...]
    partitions: Mapping[str, Partition]

    @classmethod
    def parse(cls, nodes_body: Mapping[str, Any], partitions_body: Mapping[str, Any]) -> "Shape":
        """From the answers of ``GET nodes`` and ``GET partitions`` (every version v0.0.38-v0.0.45)."""
        nodes = tuple(_node(item) for item in nodes_body.get("nodes") or [] if isinstance(item, Mapping))
        parts = (_partition(item) for item in partitions_body.get("partitions") or [] if isinstance(item, Mapping))
        return cls(nodes, {p.name: p for p in parts if p.name})

    def verdict(self, request: BatchRequest) -> Verdict:
        """Whether ``request`` could ever run on this cluster as configured."""
        if request.extra or request.licenses:
            return UNDECIDED
        if request.partition:
            partition = self.partitions.get(request.partition)
            return self._verdict(request, partition) if partition else UNDECIDED
        defaults = [p for p in self.partitions.values() if p.default]
        if len(defaults) == 1:
            return self._verdict(request, defaults[0])
        # No default named: decided only when every partition gives the same answer.
        verdicts = [self._verdict(request, p) for p in self.partitions.values()]
        if verdicts and all(v.decided and v.reason is None for v in verdicts):
            return FITS
        if verdicts and all(v.decided and v.reason is not None for v in verdicts):
            return verdicts[0]
        return UNDECIDED

    def _verdict(self, request: BatchRequest, partition: Partition) -> Verdict:
        members = [n for n in self.nodes if partition.name in n.partitions]
        wanted = request.nodes
        where = f"partition {partition.name}"
        limit = min(len(members), partition.max_nodes if partition.max_nodes is not None else len(members))
        if wanted > limit or wanted < partition.min_nodes:
            return Verdict(True, "PartitionNodeLimit", f"{wanted} nodes asked; {where} allows {limit}")
        memory_mb = request.memory_gb * 1024
        able = [n for n in members if n.memory_mb >= memory_mb and n.gpus >= request.gpus_per_node]
        if len(able) < wanted:
            asked = ", ".join(
                part
                for part in (
                    f"{request.memory_gb} GB" if request.memory_gb else "",
                    f"{request.gpus_per_node} GPUs" if request.gpus_per_node else "",
                )
                if part
            )
            return Verdict(
                True, "BadConstraints", f"{wanted} nodes with {asked} asked; {where} has {len(able)} such nodes"
            )
        cpus = sum(sorted((n.cpus for n in able), reverse=True)[:wanted])
        if request.ntasks > cpus:
            return Verdict(
                True, "PartitionConfig", f"{request.ntasks} tasks asked; {wanted} nodes of {where} have {cpus} CPUs"
            )
        return FITS


def _node(item: Mapping[str, Any]) -> Node:
    gres = item.get("gres")
    kept = number(item.get("specialized_memory")) or 0
    partitions = item.get("partitions")
    return Node(
        name=str(item.get("name", "")),
        cpus=number(item.get("cpus")) or 0,
        memory_mb=(number(item.get("real_memory")) or 0) - kept,
        gpus=sum(int(n) for n in _GPU.findall(gres)) if isinstance(gres, str) else 0,
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
