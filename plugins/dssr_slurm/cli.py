"""Talking to Slurm with its own commands over SSH (``JARVICE_SLURM_INTERFACE=cli``)."""

from __future__ import annotations

import secrets
from typing import Callable, Iterable

from dssr_core import BadRequest, ClusterError, Identity, command
from dssr_core.ssh import Login, Result, SSHPool

from .backend import PREFIX, AcctRecord, BatchRequest, SlurmBackend, SlurmJob
from .parsing import SACCT_FIELDS, SEP, parse_sacct, parse_squeue, squeue_format
from .remote import ServiceShell
from .script import parse_submission_output

#: at most this many job ids per sacct call
ACCT_BATCH = 50


class CliBackend(SlurmBackend):
    """``squeue``/``sacct``/``scancel``/``scontrol`` as the service user; ``sbatch`` as the job's user."""

    def __init__(self, shell: ServiceShell, pool: SSHPool, login_for: Callable[[Identity | None], Login]) -> None:
        self.shell = shell
        self.pool = pool
        self.login_for = login_for

    def _run(self, cmd: str, what: str, *, idempotent: bool = True) -> Result:
        result = self.shell.run(cmd, idempotent=idempotent)
        if result.rc != 0:
            raise ClusterError(f"{what} failed on the cluster: {_first_line(result.stderr or result.stdout)}")
        return result

    def queue(self) -> list[SlurmJob]:
        marker = "\x1e" + secrets.token_hex(8) + SEP
        result = self._run(command("squeue", "-h", "-a", "-t", "all", "-o", squeue_format(marker)), "squeue")
        return parse_squeue(result.stdout, marker, PREFIX)

    def accounting(self, jobids: Iterable[str]) -> dict[str, AcctRecord]:
        ids = sorted(set(jobids), key=int)
        records: dict[str, AcctRecord] = {}
        for start in range(0, len(ids), ACCT_BATCH):
            chunk = ids[start:start + ACCT_BATCH]
            cmd = command(
                "sacct", "-X", "-P", "-n", f"--delimiter={SEP}", "--format=" + ",".join(SACCT_FIELDS),
                "-j", ",".join(chunk),
            )
            records.update(parse_sacct(self._run(cmd, "sacct").stdout, chunk))
        return records

    def submit(self, request: BatchRequest, identity: Identity | None) -> str:
        raise NotImplementedError("the connector submits through submit_script()")

    def submit_script(self, login: Login, script: str) -> tuple[str, bool]:
        """Run a submission script (see :mod:`dssr_slurm.script`) as ``login``: (job id, already existed)."""
        # Never retried once sent: the script itself checks by name first, but a
        # lost connection mid-submission is reported rather than guessed.
        result = self.pool.run(login, "bash -s", stdin=script.encode("utf-8"), idempotent=False, kind="sbatch")
        found = parse_submission_output(result.stdout)
        if result.rc != 0 or found is None:
            message = _first_line(result.stderr or result.stdout)
            if "sbatch: error" in result.stderr and _is_refusal(result.stderr):
                raise BadRequest(f"Slurm refused the job: {message}")
            raise ClusterError(f"Submission failed on the cluster as {login.user}: {message}")
        return found

    def cancel(self, jobid: str, signal: str | None = None) -> None:
        parts: list[str] = ["scancel"]
        if signal:
            parts += ["-f", "-s", signal]
        result = self.shell.run(command(parts, _digits(jobid)))
        if result.rc != 0 and not _gone(result.stderr):
            raise ClusterError(f"scancel failed: {_first_line(result.stderr)}")

    def release(self, jobid: str) -> None:
        result = self.shell.run(command("scontrol", "release", _digits(jobid)))
        if result.rc != 0:
            raise ClusterError(f"scontrol release failed: {_first_line(result.stderr)}")

    def show(self, jobid: str) -> str:
        result = self.shell.run(command("scontrol", "show", "job", _digits(jobid)))
        if result.rc != 0:
            if _gone(result.stderr):
                return f"Job {jobid} is no longer known to slurmctld."
            raise ClusterError(f"scontrol show job failed: {_first_line(result.stderr)}")
        return result.stdout

    def ping(self) -> None:
        self.pool.banner()
        result = self.shell.run(command("scontrol", "ping"), timeout=10)
        if result.rc != 0 or "UP" not in result.stdout:
            raise ClusterError(f"slurmctld does not answer: {_first_line(result.stdout or result.stderr)}")


def _digits(jobid: str) -> str:
    if not jobid.isdigit():
        raise BadRequest(f"Job id {jobid!r} is not a Slurm job id (digits only).")
    return jobid


def _gone(stderr: str) -> bool:
    text = stderr.lower()
    return "invalid job id" in text or "already completing or completed" in text or "job has finished" in text


def _is_refusal(stderr: str) -> bool:
    text = stderr.lower()
    return any(
        word in text
        for word in ("invalid partition", "requested node configuration", "invalid account", "invalid qos",
                     "unrecognized option", "invalid", "memory specification", "more processors than permitted")
    ) and "unable to contact slurm controller" not in text and "socket timed out" not in text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return "no message"
