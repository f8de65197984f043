"""Reading Grid Engine: ``qstat -xml -u '*' -g t``, accounting records, state letters, id order.

Job names of other users cannot confuse either reader: ``qstat -xml`` escapes
them as XML text, and an accounting record is read from both ends (a colon in
a name only lengthens the record, so the fields after the name are counted from
the right).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import datetime
from typing import Any, Callable, Iterable

from dssr_core import ClusterError, JobState
from dssr_core.batch import PREFIX, EndedJob, QueuedJob, format_seconds

#: job ids count up from 1 and wrap after this one (checked on 8.1.9: 9999999, then 1)
MAX_JOBID = 9_999_999
#: the account string ``terminate`` gives a job before deleting it: accounting then tells a cancel apart
CANCELLED_ACCOUNT = "dssr_cancelled"
#: fields of an 8.1 accounting record (accounting(5)); the job's name is the fifth
ACCT_FIELDS = 45


def end_state(account: str, failed: int, exit_status: int) -> JobState:
    """A job's end from its accounting record: cancelled when ``terminate`` marked its account,
    completed when it started (``failed`` 0) and its script exited 0, else failed."""
    if account == CANCELLED_ACCOUNT:
        return JobState.CANCELLED
    return JobState.COMPLETED if failed == 0 and exit_status == 0 else JobState.FAILED


def job_state(letters: str) -> JobState:
    """Grid Engine's state letters -> the job model.  ``E`` (error: the job never runs until an
    operator clears it) is an end; ``d`` (being deleted) still runs; ``h``/``w`` queued."""
    if "E" in letters:
        return JobState.FAILED
    if any(c in letters for c in "rtRsSTd"):
        return JobState.RUNNING
    if "q" in letters or "w" in letters or "h" in letters:
        return JobState.QUEUED
    return JobState.UNKNOWN


def held(letters: str) -> bool:
    """Pending under a hold (``hqw``): :func:`dssr_core.batch.submit_once`'s own, a user hold."""
    return "h" in letters and "q" in letters


def wrap_order(jobids: Iterable[str]) -> Callable[[str], int]:
    """The creation order of ``jobids`` (jobs of one name, created close together) across the wrap.

    Ids count up to :data:`MAX_JOBID` and start again at 1.  When the ids span more than half the
    range, the wrap lies between them: the low ones are the newer.  Exact for jobs of one name created
    fewer than 5,000,000 submissions apart (submit-once's duplicates are seconds apart)."""
    numbers = [int(j) for j in jobids]
    wrapped = bool(numbers) and max(numbers) - min(numbers) > MAX_JOBID // 2

    def order(jobid: str) -> int:
        number = int(jobid)
        return number + MAX_JOBID if wrapped and number <= MAX_JOBID // 2 else number

    return order


def parse_qstat(text: str, prefix: str = PREFIX) -> list[QueuedJob]:
    """Jobs of ``date '+%Y-%m-%dT%H:%M:%S'`` + ``qstat -xml -u '*' -g t`` whose name starts with ``prefix``."""
    now_text, _, xml = text.partition("\n")
    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise ClusterError("qstat printed something unexpected (a document type in its XML).")
    try:
        root = ElementTree.fromstring(xml)
        now = datetime.fromisoformat(now_text.strip())
    except (ElementTree.ParseError, ValueError):
        raise ClusterError("qstat printed something that cannot be read as its XML.") from None
    jobs: dict[str, dict[str, Any]] = {}
    for item in root.iter("job_list"):
        jobid = (item.findtext("JB_job_number") or "").strip()
        name = item.findtext("JB_name") or ""
        if not jobid.isdigit() or not name.startswith(prefix):
            continue
        job = jobs.setdefault(
            jobid,
            {"name": name, "user": (item.findtext("JB_owner") or "").strip(), "state": "", "start": "", "nodes": []},
        )
        job["state"] = job["state"] or (item.findtext("state") or "").strip()
        job["start"] = job["start"] or (item.findtext("JAT_start_time") or "").strip()
        job["submitted"] = job.get("submitted") or (item.findtext("JB_submission_time") or "").strip()
        queue = (item.findtext("queue_name") or "").strip()
        host = queue.partition("@")[2]
        if host and host not in job["nodes"]:
            if (item.findtext("master") or "").strip() == "MASTER":
                job["nodes"].insert(0, host)
            else:
                job["nodes"].append(host)
    return [
        QueuedJob(
            jobid=jobid,
            name=job["name"],
            user=job["user"],
            state=job["state"],
            elapsed=_since(job["start"], now),
            nodes=tuple(job["nodes"]),
            submitted=_epoch(job.get("submitted", "")),
            started=_epoch(job["start"]),
        )
        for jobid, job in jobs.items()
    ]


def _epoch(text: str) -> float | None:
    """qstat's local ISO time (the submit host's zone, as ``date`` printed "now") as seconds since the epoch."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _since(start: str, now: datetime) -> str:
    if not start:
        return "00:00:00"
    try:
        return format_seconds((now - datetime.fromisoformat(start)).total_seconds())
    except ValueError:
        return "00:00:00"


def parse_accounting(text: str, jobids: Iterable[str], prefix: str = PREFIX) -> dict[str, EndedJob]:
    """The master-task records of ``jobids`` among accounting lines; the newest when an id was reused."""
    wanted = set(jobids)
    found: dict[str, tuple[int, EndedJob]] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < ACCT_FIELDS:
            continue
        extra = len(parts) - ACCT_FIELDS  # colons in the job name
        name = ":".join(parts[4 : 5 + extra])
        tail = parts[5 + extra :]
        jobid, account, pe_task = tail[0], tail[1], tail[-4]
        if jobid not in wanted or pe_task != "NONE" or not name.startswith(prefix):
            continue
        try:
            submitted, start, end = int(tail[3]), int(tail[4]), int(tail[5])
            failed, exit_status = int(tail[6].split()[0]), int(tail[7])
        except (ValueError, IndexError):
            continue
        state = end_state(account, failed, exit_status)
        record = EndedJob(
            jobid=jobid,
            name=name,
            user=parts[3],
            state=state,
            detail=f"{state.value.upper()} (failed {failed}, exit_status {exit_status})",
            elapsed=format_seconds(end - start if start else 0),
            # the script's status is worth believing only of a job that started and was not deleted
            exit_code=exit_status if failed == 0 and state is not JobState.CANCELLED else None,
            submitted=float(submitted) or None,
            started=float(start) or None,
            ended=float(end) or None,
        )
        if jobid not in found or submitted >= found[jobid][0]:
            found[jobid] = (submitted, record)
    return {jobid: record for jobid, (_, record) in found.items()}
