"""What a batch connector knows of jobs: the queue's view, accounting's, a planned submission, and the
queue indexed once per snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from .._executor import Launch
from .._job import JobRef, JobSpec, JobState, JobStatus
from .._validate import NAME_PATTERN
from ._scratch import JobFiles

#: the scheduler's job names of this downstream start with this prefix
PREFIX = "jarvice_"


@dataclass(frozen=True)
class QueuedJob:
    """A job as the scheduler's queue lists it (one line of ``squeue``, one job of ``qstat``)."""

    jobid: str
    #: the full scheduler job name (``jarvice_<name>``)
    name: str
    user: str
    #: the scheduler's own state word (``PENDING``, ``hqw``...), mapped by :meth:`BatchConnector.job_state`
    state: str
    #: ``HH:MM:SS`` since it started
    elapsed: str = "00:00:00"
    #: its hosts, the first one's first
    nodes: tuple[str, ...] = ()
    #: why it waits, in the scheduler's words; empty when not said
    reason: str = ""
    #: seconds since the epoch; None when the scheduler does not say (a pending job's start and a
    #: running job's end are only forecasts)
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None
    #: the job's free-text comment: where a connector keeps the spec's digest (:meth:`dssr_core.JobSpec.digest`)
    comment: str = ""


@dataclass(frozen=True)
class EndedJob:
    """A job's end as the scheduler's accounting has it."""

    jobid: str
    #: the full scheduler job name (``jarvice_<name>``)
    name: str
    user: str
    state: JobState
    #: the scheduler's word for the end (``COMPLETED``, ``CANCELLED by 0``...)
    detail: str
    elapsed: str = "00:00:00"
    #: the job script's exit code, when the scheduler recorded one worth believing
    exit_code: int | None = None
    #: False while the record holds the job's end but not yet its name (the scheduler writes the two
    #: apart): nothing can say whose end it is until then, so the answer is "ask again shortly"
    complete: bool = True
    #: seconds since the epoch; None when accounting does not say
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None


@dataclass(frozen=True)
class JobPlan:
    """A job ready to submit: the spec, its full scheduler name, its cluster user, its files and the
    executor's launch (what :meth:`BatchConnector.submit_job` receives)."""

    spec: JobSpec
    #: full scheduler name, ``jarvice_<name>``
    name: str
    user: str
    files: JobFiles
    launch: Launch


@dataclass(frozen=True)
class QueueIndex:
    """One queue listing, indexed once so that every request on it costs the same at any size.

    One name, one job: when the queue holds several jobs of one name and user
    (duplicates that submit-once is cancelling), only the first in the
    scheduler's id order is this downstream's job.
    """

    #: every job of the listing, by id (duplicates included: a look-up by id names them as they are)
    by_id: Mapping[str, QueuedJob]
    #: this downstream's queued or running jobs, one per name, in the listing's order
    statuses: Sequence[JobStatus]
    #: the same, by id
    status_by_id: Mapping[str, JobStatus]

    @classmethod
    def of(
        cls,
        jobs: Sequence[QueuedJob],
        job_state: Callable[[str], JobState],
        order: Callable[[Iterable[str]], Callable[[str], int]] = lambda ids: int,
    ) -> "QueueIndex":
        groups: dict[tuple[str, str], list[str]] = {}
        for job in jobs:
            groups.setdefault((job.name, job.user), []).append(job.jobid)
        first = {key: min(ids, key=order(ids)) for key, ids in groups.items()}
        statuses: list[JobStatus] = []
        for job in jobs:
            state, name = job_state(job.state), job.name[len(PREFIX) :]
            if state.finished or first[(job.name, job.user)] != job.jobid or not NAME_PATTERN.match(name):
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
