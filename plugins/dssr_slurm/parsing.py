"""Reading ``squeue`` and ``sacct`` output that other users' job names cannot confuse.

Fields are separated by the ASCII unit separator (``\\x1f``) and the job name
is always the last field, so a name holding the separator stays in its field.
``squeue`` records also start with a per-call random marker, so a name holding
a newline cannot forge a record; ``sacct`` records are recognised by the
requested job ids that start them.
"""

from __future__ import annotations

import re
from typing import Iterable

from dssr_core import ClusterError
from dssr_core.batch import QueuedJob, expand_nodelist, normalize_elapsed

from .backend import AcctRecord
from .shape import Node, Partition, Shape, gpu_count
from .states import clean_state

SEP = "\x1f"
#: squeue fields before the name (``%i %u %T %M %N %r``, submit, start and end time ``%V %S %e``, comment
#: ``%k``), then ``%j``
SQUEUE_FIELDS = ("%i", "%u", "%T", "%M", "%N", "%r", "%V", "%S", "%e", "%k", "%j")
#: sacct fields, the name last
SACCT_FIELDS = ("JobID", "User", "State", "ExitCode", "Elapsed", "Submit", "Start", "End", "JobName")
#: squeue and sacct print times as seconds since the epoch with this in their environment (Slurm's
#: slurm_make_time_str: a strftime format), never in the cluster's local time zone
TIME_FORMAT_ENV = "SLURM_TIME_FORMAT=%s"


def epoch(text: str) -> float | None:
    """A time printed under :data:`TIME_FORMAT_ENV` -> seconds; ``N/A``, ``Unknown``, ``None``, 0 -> None."""
    text = text.strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def squeue_format(marker: str) -> str:
    """The ``squeue -o`` format: ``<marker>`` then the fields, separated by ``\\x1f``."""
    return marker + SEP.join(SQUEUE_FIELDS)


def parse_squeue(text: str, marker: str, prefix: str) -> list[QueuedJob]:
    """Jobs of an ``squeue -h -o <squeue_format(marker)>`` output whose name starts with ``prefix``."""
    if not text.strip():
        return []
    if not text.startswith(marker):
        raise ClusterError("squeue printed something unexpected (no job record at the start of its output).")
    jobs = []
    for record in text[len(marker) :].split("\n" + marker):
        record = record[:-1] if record.endswith("\n") else record
        parts = record.split(SEP, len(SQUEUE_FIELDS) - 1)
        if len(parts) != len(SQUEUE_FIELDS) or not parts[0].strip().isdigit():
            raise ClusterError("squeue printed a record that cannot be read.")
        jobid, user, state, elapsed, nodes, reason, submitted, started, ended, comment, name = parts
        if not name.startswith(prefix):
            continue
        try:
            hosts = tuple(expand_nodelist(nodes))
        except Exception:  # noqa: BLE001 - an odd node list is not worth failing the whole poll
            hosts = ()
        jobs.append(
            QueuedJob(
                jobid=jobid.strip(),
                name=name,
                user=user.strip(),
                state=clean_state(state),
                elapsed=normalize_elapsed(elapsed),
                nodes=hosts,
                reason=reason.strip(),
                submitted=epoch(submitted),
                started=epoch(started),
                ended=epoch(ended),
                comment=comment.strip(),
            )
        )
    return jobs


def parse_sacct(text: str, jobids: Iterable[str]) -> dict[str, AcctRecord]:
    """Records of ``sacct -X -P -n --delimiter=\\x1f --format=<SACCT_FIELDS> -j <ids>`` for ``jobids``."""
    wanted = set(jobids)
    starts = re.compile("^(" + "|".join(re.escape(j) for j in sorted(wanted)) + ")" + SEP) if wanted else None
    records: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        parts = line.split(SEP, len(SACCT_FIELDS) - 1)
        if starts is not None and starts.match(line) and len(parts) == len(SACCT_FIELDS) and parts[0] not in records:
            # one record per id (-X); a later "record" of the same id can only be a job name's text
            current = parts
            records[parts[0]] = parts
        elif current is not None:
            current[-1] += "\n" + line
    return {
        jobid: AcctRecord(
            jobid=jobid,
            name=name.rstrip("\n"),
            user=user.strip(),
            state=clean_state(state),
            elapsed=normalize_elapsed(elapsed),
            exit_code=exit_code.strip() or "0:0",
            submitted=epoch(submitted),
            started=epoch(started),
            ended=epoch(ended),
        )
        for jobid, (_, user, state, exit_code, elapsed, submitted, started, ended, name) in records.items()
    }


#: ``sinfo -h -N -o`` format read by :func:`parse_sinfo`: node, CPUs, memory (MB), GRES, partition, job size
SINFO_FORMAT = "%N|%c|%m|%G|%P|%s"


def parse_sinfo(text: str) -> Shape:
    """The cluster's shape from ``sinfo -h -N -o`` :data:`SINFO_FORMAT` (a line per node and partition;
    ``*`` marks the default partition; job size ``1-infinite``)."""
    nodes: dict[str, Node] = {}
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, cpus, memory, gres, partition, size = fields
        default = partition.endswith("*")
        partition = partition.rstrip("*")
        low, _, high = size.partition("-")
        partitions[partition] = Partition(partition, default, min_nodes=_count(low) or 0, max_nodes=_count(high or low))
        known = nodes.get(name)
        nodes[name] = Node(
            name=name,
            cpus=_count(cpus) or 0,
            memory_mb=_count(memory) or 0,
            gpus=gpu_count(gres),
            partitions=(*known.partitions, partition) if known else (partition,),
        )
    return Shape(tuple(nodes.values()), partitions)


def _count(text: str) -> int | None:
    """``16`` -> 16; ``infinite``, ``UNLIMITED`` or anything else -> None."""
    text = text.strip()
    return int(text) if text.isdigit() else None
