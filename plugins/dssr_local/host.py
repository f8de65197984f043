"""The local connector's dealings with this host: its state-folder lock, its user, job liveness, event text."""

from __future__ import annotations

import fcntl
import getpass
import os
import time
from pathlib import Path

from dssr_core import InUse, JobRef, JobSpec, JobState, JobStatus
from dssr_core.batch import format_seconds

from .jobfiles import OUTPUT_FILE
from .store import JobRecord

#: the host variables a job inherits (with every LC_*); everything else of the server's environment
#: (its settings, possibly credentials) stays out of jobs
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL", "PYTHONPATH")


def node_environment(hostname: str, jobid: int, job_dir: Path, spec: JobSpec) -> dict[str, str]:
    """The scheduler-neutral node variables of a local job (every node is this host)."""
    env = {key: value for key, value in os.environ.items() if key in INHERITED or key.startswith("LC_")}
    env.update(
        PROCESS_NODENAME=hostname,
        JOB_JOBID=str(jobid),
        JOB_JOB_NODELIST=hostname,
        JOB_JOB_FORMATED_NODELIST=hostname,
        JOB_NNODES=str(spec.nodes),
        JOB_NTASKS=str(spec.nodes * spec.cores),
        JOB_SUBMIT_DIR=str(job_dir),
        # as Slurm's SLURM_GPUS_PER_NODE: empty when the job asked for none
        JOB_GPUS_PER_NODE=str(spec.gpus) if spec.gpus else "",
    )
    return env


def job_status(record: JobRecord, now: float, hostname: str, user: str) -> JobStatus:
    """A local job's status (every running job is on this host, as this user)."""
    running = record.state is JobState.RUNNING
    return JobStatus(
        ref=JobRef(record.name, record.number, record.jobid),
        state=record.state,
        nodes=(hostname,) if running else (),
        elapsed=format_seconds(record.elapsed_seconds(now)),
        owner=user,
        detail="HELD" if record.held else record.state.name,
        submitted=record.submitted,
        started=record.started if running else None,
        spec_digest=record.spec_digest,
    )


def events_text(record: JobRecord, hostname: str, user: str) -> str:
    """``/events`` of a local job: ``Key=value`` lines, like ``scontrol show job``."""
    rows = [
        ("JobId", record.jobid),
        ("Name", record.name),
        ("Number", str(record.number)),
        ("State", record.state.name + (" (held)" if record.held else "")),
        ("Reason", record.reason or "-"),
        ("ExitCode", "-" if record.exit_code is None else str(record.exit_code)),
        ("Nodes", str(record.nodes)),
        ("Host", hostname),
        ("User", user),
        ("SubmitTime", _when(record.submitted)),
        ("StartTime", _when(record.started)),
        ("EndTime", _when(record.ended)),
        ("Elapsed", format_seconds(record.elapsed_seconds())),
        ("SupervisorPid", "-" if record.pid is None else str(record.pid)),
        ("Command", record.command or "-"),
        ("Folder", record.job_dir + (" (collected)" if record.collected else "")),
    ]
    return "\n".join(f"{key}={value}" for key, value in rows) + "\n"


def claim_state_dir(state_dir: Path, *, beside: bool = False) -> int | None:
    """Hold the state folder for this connector's lifetime: two servers on one folder would both start
    the same queued job. The lock dies with the process, so a crash never leaves the folder claimed.

    When another process holds it: None with ``beside`` (work beside that process, which starts and
    reaps the jobs), else a :class:`ConfigError` naming it."""
    path = state_dir / "server.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if beside:
            return None
        raise InUse(
            f"JARVICE_LOCAL_STATE_DIR={str(state_dir)!r} is in use by another local connector "
            f"(pid {holder}); give each server its own folder."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def last_sign_of_life(record: JobRecord) -> float:
    """When a job that died unseen probably ended: its output's last change, else now."""
    seen = mtime(Path(record.job_dir) / OUTPUT_FILE) if record.job_dir else None
    if seen is not None and record.started is not None:
        return max(seen, record.started)
    return time.time()


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))
