"""Slurm job states -> the job model (LEGACY_API.md: which states are running, queued, and each end's rc)."""

from __future__ import annotations

from dssr_core import JobState

#: long and compact names of the states listed as running
RUNNING = {
    "RUNNING",
    "R",
    "REQUEUE_HOLD",
    "RH",
    "RESIZING",
    "RS",
    "SIGNALING",
    "SI",
    "STOPPED",
    "ST",
    "SUSPENDED",
    "S",
    "COMPLETING",
    "CG",
    "STAGE_OUT",
    "SO",
}
#: long and compact names of the states listed as queued
QUEUED = {
    "CONFIGURING",
    "CF",
    "PENDING",
    "PD",
    "RESV_DEL_HOLD",
    "RD",
    "REQUEUE_FED",
    "RF",
    "REQUEUED",
    "RQ",
}
COMPLETED = {"COMPLETED", "CD"}
FAILED = {"FAILED", "F", "NODE_FAIL", "NF", "OUT_OF_MEMORY", "OOM", "TIMEOUT", "TO", "BOOT_FAIL", "BF"}
CANCELLED = {"CANCELLED", "CA", "DEADLINE", "DL", "PREEMPTED", "PR"}


def clean_state(raw: str) -> str:
    """``CANCELLED by 1001`` -> ``CANCELLED``; ``RUNNING+`` -> ``RUNNING``; upper case."""
    word = raw.strip().split(" ", 1)[0].upper()
    return word.rstrip("+")


def job_state(raw: str) -> JobState:
    state = clean_state(raw)
    if state in RUNNING:
        return JobState.RUNNING
    if state in QUEUED:
        return JobState.QUEUED
    if state in COMPLETED:
        return JobState.COMPLETED
    if state in FAILED:
        return JobState.FAILED
    if state in CANCELLED:
        return JobState.CANCELLED
    return JobState.UNKNOWN


#: Reasons slurmctld gives a pending job that cannot start while the cluster's configuration stays as
#: it is (slurmctld's node_scheduler.c: "can never be satisfied", "can not be initiated until the
#: partition's configuration changes"), -> Slurm's own words for the refusal.  ``sbatch`` refuses such
#: a job at submission (``--test-only`` all of them), but a *held* job is not checked until released.
NEVER_RUNS = {
    "BadConstraints": "Requested node configuration is not available",
    "PartitionNodeLimit": "Requested partition configuration not available now (node count outside the partition's limits)",
    "PartitionConfig": "Requested partition configuration not available now",
}


def never_runs(reason: str) -> str | None:
    """Slurm's words refusing a job pending for ``reason``, or None when the job may still start."""
    return NEVER_RUNS.get(reason.strip())


#: what ``scancel`` and ``scontrol`` say (lower case) of a job that has already ended or left slurmctld
GONE_WORDS = ("invalid job id", "already completing or completed", "job has finished")


def gone(message: str) -> bool:
    """Whether Slurm's ``message`` says the job has already ended or is no longer known."""
    text = message.lower()
    return any(words in text for words in GONE_WORDS)
