"""Submit-once: one batch job per name, whatever the number of servers submitting it.

The protocol is the one submission mechanism of every batch connector and every
way of talking to a scheduler.  It needs no lock and no state outside the
scheduler, so any number of server replicas (and restarts) may submit the same
job at the same moment.  It comes in two forms that take the same steps, so one
argument (:func:`submit_once`'s docstring) proves both:

* :func:`submit_once` runs it from Python, one scheduler call per step, for a
  scheduler reached by an API (slurmrestd);
* :func:`once_script` writes it as one bash script that a shell on the cluster
  runs as the job's user, so that a submission over SSH is one remote command
  (one round trip) whatever the number of steps.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

from .._errors import ClusterError

log = logging.getLogger("dssr_core.batch.once")  # its name in logs, stable


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


def submit_once(
    attempt: OnceAttempt, *, keep_held: bool = False, order: Callable[[str], int] = int
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


# ---------------------------------------------------------------------------------------------------------
# The same protocol as one bash script (for a scheduler driven by commands in a shell on the cluster)

#: the last line :func:`once_script` prints: ``DSSR_ONCE=<the job's id> <1 if it already existed, else 0>``
ONCE_TAG = "DSSR_ONCE="
_ONCE_LINE = re.compile(rf"^{ONCE_TAG}([0-9A-Za-z][0-9A-Za-z._-]*) ([01])$")


@dataclass(frozen=True)
class OnceCommands:
    """A scheduler's part of :func:`once_script`: four bash function bodies, run as the job's user.

    ``find`` prints one line ``KEY ID HELD FINISHED`` for every job of the name and user that the
    scheduler still shows, finished ones included, and prints nothing when there is none (the promise
    of :meth:`OnceAttempt.find`).  KEY is a non-negative integer that orders jobs by creation (a
    scheduler whose ids only grow prints the id itself), HELD is ``1`` when the job is held by the hold
    the protocol placed and FINISHED is ``1`` when the job has ended; both are ``0`` otherwise.  It
    returns non-zero when the scheduler does not answer.

    ``submit_held`` submits the job with a user hold and prints its id as the last line of its
    standard output; it runs in a subshell under ``set -e`` and returns non-zero, with the
    scheduler's message on standard error, when the job is not submitted.  It runs only when no job
    of the name exists, so it is the place to write the job's files and to ask the scheduler whether
    the job could ever run.

    ``cancel`` cancels the ids given as arguments (``"$@"``); a job already gone is not an error.
    ``release`` lifts the user hold of the id given as ``"$1"``.

    ``maybe_exists`` (optional) returns non-zero only when no job of the name can exist (e.g. the
    job's folder, written before any submission of the name, is absent): the first listing is then
    skipped, one scheduler call less for a new job.  Skipping it changes nothing in the argument:
    the listing after the submission still holds every job of the name (a job that did exist
    becomes *the* job, and the new one is cancelled).
    """

    find: str
    submit_held: str
    cancel: str
    release: str
    maybe_exists: str = "return 0"


def once_script(commands: OnceCommands, *, keep_held: bool = False) -> str:
    """The submit-once protocol of :func:`submit_once` as one bash script, run as the job's user.

    The steps are :func:`submit_once`'s, in the same order, so its argument holds for the script
    (the order of ids is :attr:`OnceCommands.find`'s KEY, lowest first): list the jobs of the name;
    if there are none, submit the job held and list again, and fail (cancelling it) when the listing
    lacks it; take the job with the lowest key as *the* job; cancel every other unfinished job of
    the name; release the job unless ``keep_held``, where a failed release is an error only when the
    job is still held afterwards (another submitter may have released it first).

    The script ignores SIGHUP and SIGPIPE, so a connection dropped mid-way never stops it between
    two steps (it ends as if it had been answered; the upstream's retry finds the job).  It prints
    :data:`ONCE_TAG` with the job's id and whether it already existed as its last line (read it with
    :func:`parse_once_output`) and exits 0; on failure it exits non-zero with a message on standard
    error.  Only bash builtins run between the scheduler's own commands.
    """
    held_wanted = "1" if keep_held else "0"
    return (
        "set -u -o pipefail\n"
        "trap '' HUP PIPE\n"
        f"dssr_find() {{\n{_body(commands.find)}}}\n"
        f"dssr_submit_held() (\nset -e\n{_body(commands.submit_held)})\n"
        f"dssr_cancel() {{\n{_body(commands.cancel)}}}\n"
        f"dssr_release() {{\n{_body(commands.release)}}}\n"
        f"dssr_maybe_exists() {{\n{_body(commands.maybe_exists)}}}\n"
        + _PROTOCOL.replace("@KEEP_HELD@", held_wanted).replace("@TAG@", ONCE_TAG)
    )


def parse_once_output(stdout: str) -> tuple[str, bool] | None:
    """(the job's id, it already existed) from what :func:`once_script` printed; None when it printed none."""
    for line in reversed(stdout.splitlines()):
        found = _ONCE_LINE.match(line.strip())
        if found:
            return found.group(1), found.group(2) == "1"
    return None


def _body(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# The steps of submit_once, in bash.  A listing is lines "KEY ID HELD FINISHED" (OnceCommands.find).
_PROTOCOL = r"""dssr_fail() { printf 'submit-once: %s\n' "$*" >&2; exit 1; }
# the job of listing $1, its lowest KEY: sets winner, held and finished
dssr_lowest() {
    local key id h f best=''
    while read -r key id h f; do
        [ -n "$id" ] || continue
        if [ -z "$best" ] || [ "$key" -lt "$best" ]; then best=$key winner=$id held=$h finished=$f; fi
    done <<<"$1"
}
# is job $1 in listing $2, and held (the third field) when $3 is 1
dssr_listed() {
    local id held
    while read -r _ id held _; do
        if [ "$id" = "$1" ] && { [ "${3:-0}" = 0 ] || [ "$held" = 1 ]; }; then return 0; fi
    done <<<"$2"
    return 1
}
listing=''
if dssr_maybe_exists; then
    listing=$(dssr_find) || dssr_fail "listing the jobs of this name failed"
fi
existed=1 mine='' keep_held=@KEEP_HELD@
if [ -z "$listing" ]; then
    existed=0
    mine=$(dssr_submit_held) || exit 1
    mine=${mine##*$'\n'}
    [ -n "$mine" ] || dssr_fail "the submission printed no job id"
    listing=$(dssr_find) || dssr_fail "job $mine was submitted held, but listing the jobs of its name failed"
    if ! dssr_listed "$mine" "$listing"; then
        dssr_cancel "$mine"
        dssr_fail "Job $mine was submitted but the scheduler does not list it; it was cancelled."
    fi
fi
winner='' held=0 finished=0
dssr_lowest "$listing"
losers=()
while read -r _ id _ f; do
    if [ -n "$id" ] && [ "$id" != "$winner" ] && [ "$f" = 0 ]; then losers+=("$id"); fi
done <<<"$listing"
if [ "${#losers[@]}" -gt 0 ]; then
    dssr_cancel "${losers[@]}" || dssr_fail "cancelling the duplicates ${losers[*]} of job $winner failed"
fi
if [ "$keep_held" = 0 ] && [ "$held" = 1 ] && [ "$finished" = 0 ] && ! dssr_release "$winner"; then
    # another submitter may have released it first: only a job still held is a failure
    listing=$(dssr_find) || dssr_fail "releasing job $winner failed, and so did listing it again"
    if dssr_listed "$winner" "$listing" 1; then dssr_fail "releasing job $winner failed"; fi
fi
if [ -n "$mine" ] && [ "$winner" != "$mine" ]; then existed=1; fi
printf '@TAG@%s %s\n' "$winner" "$existed"
"""
