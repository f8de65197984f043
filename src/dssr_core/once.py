"""Submit-once: one batch job per name, whatever the number of servers submitting it.

:func:`submit_once` is the one submission mechanism of every batch connector
and every way of talking to a scheduler.  It needs no lock and no state outside
the scheduler, so any number of server replicas (and restarts) may submit the
same job at the same moment.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import ClusterError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedJob:
    """A job of the name being submitted, as the submitting user sees it in the scheduler."""

    jobid: str
    #: held by the hold :func:`submit_once` placed (a user hold its submitter may release)
    held: bool = False
    #: the job has ended (it stays visible a while, e.g. Slurm's ``MinJobAge``)
    finished: bool = False


class OnceAttempt(ABC):
    """One job's submission through one way of talking to the scheduler.

    A backend makes one per submission, bound to the job's name, its user and
    that user's credentials.  Every method acts *as the job's user*, who can
    always see, cancel and release their own jobs (Slurm's ``PrivateData=jobs``
    hides jobs from other users, coordinators aside).  Every method may block
    and raises :class:`~dssr_core.ClusterError` when the scheduler fails, or
    :class:`~dssr_core.BadRequest` when it refuses the job.
    """

    @abstractmethod
    def find(self) -> list[NamedJob]:
        """Every job of this name and user the scheduler still shows, finished ones included.

        Must reflect every submission that returned before the call started."""

    @abstractmethod
    def submit_held(self) -> str:
        """Submit the job with a user hold (it must not start) and return its id."""

    @abstractmethod
    def cancel(self, jobids: Sequence[str]) -> None:
        """Cancel these jobs (duplicates of the winner); a job already gone is not an error."""

    @abstractmethod
    def release(self, jobid: str) -> None:
        """Lift the user hold of this job."""


def _slurm_order(jobid: str) -> int:
    return int(jobid)


def submit_once(
    attempt: OnceAttempt, *, keep_held: bool = False, order: Callable[[str], int] = _slurm_order
) -> tuple[str, bool]:
    """Submit ``attempt``'s job unless a job of that name exists; return (job id, it already existed).

    The protocol: if jobs of the name exist, the one with the lowest id is the
    job.  Otherwise submit it *held*, list the jobs of the name again, and take
    the lowest id among them.  Then cancel every other unfinished job of the
    name, and release the winner unless the caller asked for a held job
    (``keep_held``).  Everyone who ends the protocol answers the winner's id.

    Why exactly one job runs and every concurrent caller answers the same id,
    given that (a) the scheduler gives ids in increasing order of creation
    (slurmctld assigns them one at a time under its job write lock, until
    ``MaxJobId`` wraps around) and (b) a listing is the job table at one
    instant, holding every job created before it (``squeue`` and slurmrestd
    read slurmctld's live table under its read lock):

    1. Let *m* be the lowest id of the jobs of this name the scheduler holds.
       Any listing that holds some job *x* of the name holds *m* too: *m* was
       created before *x* (a), and *x* before the listing (b).  A caller
       lists after its own submission returned, so its listing holds its own
       job, hence *m*, and no lower id: every caller picks *m*.  A caller
       whose first look finds jobs picks *m* for the same reason.
    2. No caller cancels *m* (each cancels ids other than its minimum, *m*),
       and no caller releases any job but *m*.  Every other job of the name
       was submitted held, so none ever starts: one job runs, *m*, whatever
       the number of callers and whatever they see of each other.
    3. A caller that stops half-way (killed, connection lost) leaves at worst
       held jobs: a held duplicate never runs, and the next submission of the
       name (the upstream retries a failed ``/submit``) cancels it, and
       releases *m* if it is still held.

    Limits, stated rather than hidden: when job ids wrap around at
    ``MaxJobId``, (a) fails for jobs created across the wrap; once *m* has
    left the scheduler's memory (``MinJobAge`` after it ended), a submission
    of the name no longer finds it (it becomes a new job, or answers a
    cancelled duplicate still remembered).
    """
    existing = attempt.find()
    if existing:
        winner = min(existing, key=lambda j: order(j.jobid))
        _settle(attempt, existing, winner, keep_held)
        return winner.jobid, True
    mine = attempt.submit_held()
    jobs = attempt.find()
    if not any(job.jobid == mine for job in jobs):
        # (b) does not hold on this scheduler: nothing is provable, so take nothing back.
        attempt.cancel([mine])
        raise ClusterError(f"Job {mine} was submitted but the scheduler does not list it; it was cancelled.")
    winner = min(jobs, key=lambda j: order(j.jobid))
    _settle(attempt, jobs, winner, keep_held)
    if winner.jobid != mine:
        log.info("job %s lost to job %s of the same name (submitted by another server): cancelled", mine, winner.jobid)
    return winner.jobid, winner.jobid != mine


def _settle(attempt: OnceAttempt, jobs: Sequence[NamedJob], winner: NamedJob, keep_held: bool) -> None:
    losers = [job.jobid for job in jobs if job.jobid != winner.jobid and not job.finished]
    if losers:
        attempt.cancel(losers)
    if keep_held or not winner.held or winner.finished:
        return
    try:
        attempt.release(winner.jobid)
    except ClusterError:
        # Another caller may have released it first (a release of a job no longer held can fail).
        again = [job for job in attempt.find() if job.jobid == winner.jobid]
        if again and again[0].held:
            raise
