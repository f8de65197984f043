"""One job's submission over SSH as the job's user, for :func:`dssr_core.batch.submit_once`."""

from __future__ import annotations

from typing import Sequence

from dssr_core import BadRequest, ClusterError, command
from dssr_core.batch import Login, NamedJob, OnceAttempt, Result, SSHPool, script_command

from .parsing import held, job_state, parse_qstat, wrap_order
from .script import parse_submission_output

#: qsub's words for a job it refuses (as opposed to a qmaster it cannot reach)
_REFUSALS = ("no suitable queues", "unknown queue", "unknown resource", "invalid option", "rejected", "denied")


class SshAttempt(OnceAttempt):
    """Every step as the job's user (who always sees, deletes and releases their own jobs).

    Grid Engine's ids wrap after 9,999,999: :meth:`order` is creation order across the wrap,
    judged on the ids of this name the last :meth:`find` saw (see :func:`wrap_order`)."""

    def __init__(self, pool: SSHPool, login: Login, name: str, script: str) -> None:
        self.pool, self.login, self.name, self.script = pool, login, name, script
        self._seen: list[str] = []

    def order(self, jobid: str) -> int:
        return wrap_order([*self._seen, jobid])(jobid)

    def _run(self, cmd: str, what: str, *, stdin: bytes | None = None, idempotent: bool = True) -> Result:
        result = self.pool.run(self.login, cmd, stdin=stdin, idempotent=idempotent, kind=what.split()[0])
        if result.rc != 0:
            message = first_line(result.stderr or result.stdout)
            if what == "qsub" and "qsub: error" in result.stderr and any(w in message.lower() for w in _REFUSALS):
                raise BadRequest(f"Grid Engine refused the job: {message}")
            raise ClusterError(f"{what} failed on the cluster as {self.login.user}: {message}")
        return result

    def find(self) -> list[NamedJob]:
        cmd = "date '+%Y-%m-%dT%H:%M:%S' && " + command("qstat", "-xml", "-u", self.login.user)
        jobs = [
            j for j in parse_qstat(self._run(cmd, "qstat").stdout) if j.name == self.name and j.user == self.login.user
        ]
        self._seen = [job.jobid for job in jobs]
        return [NamedJob(job.jobid, held=held(job.state), finished=job_state(job.state).finished) for job in jobs]

    def submit_held(self) -> str:
        # Never retried once sent: the upstream's retry finds (and settles) whatever this attempt left.
        remote, data = script_command(self.script)
        result = self._run(remote, "qsub", stdin=data, idempotent=False)
        jobid = parse_submission_output(result.stdout)
        if jobid is None:
            raise ClusterError(f"Submission failed on the cluster as {self.login.user}: {first_line(result.stdout)}")
        return jobid

    def cancel(self, jobids: Sequence[str]) -> None:
        result = self.pool.run(self.login, command("qdel", list(jobids)), kind="qdel")
        if result.rc != 0 and "does not exist" not in result.stdout + result.stderr:
            raise ClusterError(f"qdel failed on the cluster as {self.login.user}: {first_line(result.stdout)}")

    def release(self, jobid: str) -> None:
        self._run(command("qrls", jobid), "qrls")


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return "no message"
