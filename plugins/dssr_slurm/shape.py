"""The cluster's nodes and partitions, and whether a job could ever run on them.

A job submitted held is not judged against the nodes by slurmctld.  So before a submission both
backends ask :meth:`ShapeCheck.refuse`, from the cluster's shape read once per snapshot (over SSH one
``sinfo`` as the service user, :func:`dssr_slurm.parsing.parse_sinfo`; over slurmrestd ``GET nodes``
and ``GET partitions``, :func:`dssr_slurm.rest.adapter.shape_of`): a job no node of its partition could ever run is refused at once,
in Slurm's words (:data:`~dssr_slurm.states.NEVER_RUNS`), with nothing submitted; a job that fits is
submitted with no further test; only a job this model cannot judge (extra ``sbatch`` flags, licenses,
a partition it does not know, several partitions and no default named) is judged by Slurm itself
(``sbatch --test-only`` over SSH, slurmctld's look after the release over slurmrestd).

The model is slurmctld's own test of a request against the nodes' configuration, for what a
:class:`~dssr_slurm.backend.BatchRequest` can ask: the partition's node limits (reason
``PartitionNodeLimit``), enough nodes with the memory and GPUs asked per node (``BadConstraints``),
and enough CPUs on those nodes for every task, one CPU each (``PartitionConfig``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Mapping

from dssr_core import BadRequest, ClusterError
from dssr_core.batch import SharedSnapshot

from .backend import BatchRequest
from .states import NEVER_RUNS

log = logging.getLogger(__name__)

#: ``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:tesla:2,mps:100``: the count of each ``gpu`` entry
_GPU = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")


def gpu_count(gres: str) -> int:
    """The GPUs a node's GRES string names (``gpu:2`` -> 2; ``(null)`` -> 0)."""
    return sum(int(n) for n in _GPU.findall(gres))


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


#: extra flags that change nothing of where a job may run (the connector's own ``--comment``: the spec's digest)
NEUTRAL_FLAGS = frozenset({"comment"})


@dataclass(frozen=True)
class Shape:
    nodes: tuple[Node, ...]
    partitions: Mapping[str, Partition]

    def verdict(self, request: BatchRequest) -> Verdict:
        """Whether ``request`` could ever run on this cluster as configured."""
        if set(request.extra) - NEUTRAL_FLAGS or request.licenses:
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


class ShapeCheck:
    """The cluster's shape, read by ``read`` at most once per ``ttl`` seconds, and the refusal it gives."""

    def __init__(self, read: Callable[[], Shape], ttl: float) -> None:
        self._read = read
        # a reading that failed is kept too, for the ttl, as (None,): the snapshot holds no None
        self._shape: SharedSnapshot[tuple[Shape | None]] = SharedSnapshot(self._read_once, ttl)

    def verdict(self, request: BatchRequest) -> Verdict:
        """Whether ``request`` could ever run; undecided when the shape could not be read."""
        (shape,) = self._shape.get()
        return shape.verdict(request) if shape is not None else UNDECIDED

    def refuse(self, request: BatchRequest) -> Verdict:
        """Raise BadRequest, in Slurm's words, when no node could ever run ``request``; else the verdict."""
        verdict = self.verdict(request)
        if verdict.reason is not None:
            raise BadRequest(
                f"Slurm refused the job: {NEVER_RUNS[verdict.reason]} ({verdict.detail}, as Slurm describes "
                f"the cluster; Slurm's reason would be {verdict.reason}). Nothing was submitted."
            )
        return verdict

    def _read_once(self) -> tuple[Shape | None]:
        try:
            return (self._read(),)
        except ClusterError as exc:  # the job is then judged by Slurm itself
            log.warning("could not read the cluster's nodes and partitions: %s", exc)
            return (None,)
