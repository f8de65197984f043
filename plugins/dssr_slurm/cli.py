"""Talking to Slurm with its own commands over SSH (``JARVICE_SLURM_INTERFACE=cli``)."""

from __future__ import annotations

import logging
import secrets
from typing import Iterable, Iterator

from dssr_core import BadRequest, Check, ClusterError, Identity, Submission, command
from dssr_core.batch import (
    PREFIX,
    JobPlan,
    Login,
    QueuedJob,
    Result,
    ServiceShell,
    SSHPool,
    UserMappingFile,
    parse_once_output,
    script_command,
)

from . import cli_checks
from .backend import AcctRecord, SlurmBackend, batch_request
from .parsing import (
    SACCT_FIELDS,
    SEP,
    SINFO_FORMAT,
    TIME_FORMAT_ENV,
    parse_sacct,
    parse_sinfo,
    parse_squeue,
    squeue_format,
)
from .script import batch_script, submission_script
from .settings import SlurmSettings
from .shape import Shape, ShapeCheck
from .states import gone

log = logging.getLogger(__name__)

#: at most this many job ids per sacct call
ACCT_BATCH = 50


class CliBackend(SlurmBackend):
    """``squeue``/``sacct``/``scancel``/``scontrol`` as the service user; ``sbatch`` as the job's user."""

    def __init__(self, shell: ServiceShell, pool: SSHPool, mapping: UserMappingFile, cfg: SlurmSettings) -> None:
        self.shell = shell
        self.pool = pool
        self.mapping = mapping
        self.cfg = cfg
        #: the cluster's nodes and partitions (one sinfo per status ttl), which submissions are judged by
        self.shape = ShapeCheck(self._read_shape, cfg.status_ttl)

    def login_for(self, identity: Identity | None) -> Login:
        """The job's cluster login from the user-id mapping file (BadRequest for an unmapped user)."""
        return self.mapping.login_for(identity.email if identity else None)

    def describe(self) -> dict[str, str]:
        return {"user-id mapping": self.mapping.path}

    def local_checks(self) -> Iterator[Check]:
        """The user-id mapping file loads and maps someone (else no job can run: start-up stops);
        each bad entry is a failed check the server starts anyway with (the file is re-read)."""
        return cli_checks.mapping_checks(self.cfg, self.mapping)

    def diagnose(self) -> Iterator[Check]:
        """The mapping file, coordinators of the mapped users' accounts, each mapped user's key and scratch."""
        return cli_checks.diagnose(self.shell, self.pool, self.cfg, self.mapping)

    def user_login_checks(self) -> Iterator[Check]:
        """Each mapped user's key logs in (its own SSH login, whatever the service user's)."""
        return cli_checks.user_logins(self.pool, self.cfg, self.mapping)

    def probe_login(self) -> Login | None:
        """The first mapped user: node probes run as a user who may run jobs."""
        return next((login for _, login in cli_checks.logins(self.mapping)), None)

    def _run(self, cmd: str, what: str, *, idempotent: bool = True) -> Result:
        result = self.shell.run(
            cmd, idempotent=idempotent, kind=what.split()[0]
        )  # the command, also behind an env prefix
        if result.rc != 0:
            raise ClusterError(f"{what} failed on the cluster: {_first_line(result.stderr or result.stdout)}")
        return result

    def queue(self) -> list[QueuedJob]:
        marker = "\x1e" + secrets.token_hex(8) + SEP
        squeue = command("squeue", "-h", "-a", "-t", "all", "-o", squeue_format(marker))
        result = self._run(f"{TIME_FORMAT_ENV} {squeue}", "squeue")
        return parse_squeue(result.stdout, marker, PREFIX)

    def _read_shape(self) -> Shape:
        return parse_sinfo(self._run(command("sinfo", "-h", "-N", "-o", SINFO_FORMAT), "sinfo").stdout)

    def accounting(self, jobids: Iterable[str]) -> dict[str, AcctRecord]:
        ids = sorted(set(jobids), key=int)
        records: dict[str, AcctRecord] = {}
        for start in range(0, len(ids), ACCT_BATCH):
            chunk = ids[start : start + ACCT_BATCH]
            cmd = command(
                "sacct",
                "-X",
                "-P",
                "-n",
                f"--delimiter={SEP}",
                "--format=" + ",".join(SACCT_FIELDS),
                "-j",
                ",".join(chunk),
            )
            records.update(parse_sacct(self._run(f"{TIME_FORMAT_ENV} {cmd}", "sacct").stdout, chunk))
        return records

    def user_for(self, identity: Identity | None) -> str:
        return self.login_for(identity).user

    def submit(self, plan: JobPlan) -> Submission:
        """One remote command: the whole submit-once protocol runs on the cluster as the job's user
        (:func:`~dssr_slurm.script.submission_script`), so a submission costs one round trip."""
        login = self.login_for(plan.spec.identity)
        script = batch_script(plan.files, plan.spec.gpus, plan.launch.success_marker)
        request = batch_request(plan, script, workdir=plan.files.job_dir)
        # judged against the cluster's shape here (a job that can never run is refused, nothing sent);
        # sbatch --test-only in the script only for what that cannot judge
        verdict = self.shape.refuse(request)
        text = submission_script(
            request,
            plan.files,
            plan.launch.node_script,
            dict(plan.launch.secrets),
            keep_held=plan.spec.held,
            test_first=not verdict.decided,
        )
        # Never retried once sent: a lost connection mid-submission is reported, and the
        # upstream's retry finds (and settles) whatever this one left behind.
        remote, data = script_command(text)
        result = self.pool.run(login, remote, stdin=data, idempotent=False, kind="sbatch")
        answer = parse_once_output(result.stdout) if result.rc == 0 else None
        if answer is None:
            message = _error_line(result.stderr or result.stdout)
            if "sbatch: error" in result.stderr and _is_refusal(result.stderr):
                raise BadRequest(f"Slurm refused the job: {message}")
            raise ClusterError(f"Submission failed on the cluster as {login.user}: {message}")
        jobid, existed = answer
        if existed:
            log.info("job %s (%s) already existed: not submitted again", jobid, request.name)
        shown_script = f"{script}\n# ---- {plan.files.node_script} ----\n{plan.launch.node_script}"
        return Submission(jobid, script=shown_script, existed=existed)

    def cancel(self, jobid: str, signal: str | None = None) -> None:
        parts: list[str] = ["scancel"]
        if signal:
            parts += ["-f", "-s", signal]
        result = self.shell.run(command(parts, _digits(jobid)))
        if result.rc != 0 and not gone(result.stderr):
            raise ClusterError(f"scancel failed: {_first_line(result.stderr)}")

    def release(self, jobid: str) -> None:
        result = self.shell.run(command("scontrol", "release", _digits(jobid)))
        if result.rc != 0:
            raise ClusterError(f"scontrol release failed: {_first_line(result.stderr)}")

    def show(self, jobid: str) -> str:
        result = self.shell.run(command("scontrol", "show", "job", _digits(jobid)))
        if result.rc != 0:
            if gone(result.stderr):
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


def _error_line(text: str) -> str:
    """The line of a failed submission's output that says why (sbatch's or the protocol's own), else the first."""
    for line in text.splitlines():
        if "error:" in line or line.startswith("submit-once:"):
            return line.strip()[:300]
    return _first_line(text)


def _is_refusal(stderr: str) -> bool:
    text = stderr.lower()
    return (
        any(
            word in text
            for word in (
                "invalid partition",
                "requested node configuration",
                "invalid account",
                "invalid qos",
                "unrecognized option",
                "invalid",
                "memory specification",
                "more processors than permitted",
            )
        )
        and "unable to contact slurm controller" not in text
        and "socket timed out" not in text
    )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return "no message"
