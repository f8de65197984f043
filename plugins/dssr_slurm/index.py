"""The queue snapshot indexed once per refresh, so that every request on it costs the same at any size.

``/running`` and ``/queued`` read the prepared list; ``/runstatus`` and every
look-up by id read a dict.  One name, one job: when slurmctld holds several
jobs of one name and user (duplicates that :func:`dssr_core.submit_once` is
cancelling), only the lowest id is this downstream's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from dssr_core import JobRef, JobState, JobStatus
from dssr_core import NAME_PATTERN

from .backend import PREFIX, SlurmJob
from .states import job_state


@dataclass(frozen=True)
class QueueIndex:
    """One ``squeue`` (or ``GET jobs``) answer, read once."""

    #: every job of the answer, by id (duplicates included: a look-up by id names them as they are)
    by_id: Mapping[str, SlurmJob]
    #: this downstream's queued or running jobs, one per name, in the answer's order
    statuses: Sequence[JobStatus]
    #: the same, by id
    status_by_id: Mapping[str, JobStatus]

    @classmethod
    def of(cls, jobs: Sequence[SlurmJob]) -> "QueueIndex":
        first: dict[tuple[str, str], int] = {}
        for job in jobs:
            key, number = (job.name, job.user), int(job.jobid)
            if number < first.get(key, number + 1):
                first[key] = number
        statuses: list[JobStatus] = []
        for job in jobs:
            state = job_state(job.state)
            name = job.name[len(PREFIX) :]
            if state.finished or first[(job.name, job.user)] != int(job.jobid) or not NAME_PATTERN.match(name):
                continue
            statuses.append(
                JobStatus(
                    ref=JobRef(name, 0, job.jobid),
                    state=state,
                    nodes=job.nodes,
                    elapsed=job.elapsed,
                    owner=job.user,
                    detail=job.state,
                    reason=job.reason,
                    submitted=job.submitted,
                    started=job.started if state is not JobState.QUEUED else None,
                    spec_digest=job.comment,
                )
            )
        return cls(
            by_id={job.jobid: job for job in jobs},
            statuses=tuple(statuses),
            status_by_id={status.ref.jobid: status for status in statuses},
        )
