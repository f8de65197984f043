"""The Grid Engine connector: submit-once as the mapped user over SSH, one ``qstat`` per snapshot,
the accounting file in batches for ended jobs: the hooks of :class:`dssr_core.batch.BatchConnector`.

Job files are the batch layout every batch connector shares (``<scratch>/users/<owner>/jarvice_<name>.out``
and the folder ``jarvice_<name>/``).  What Grid Engine cannot do as Slurm does is in docs/gridengine.md.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from dssr_core import (
    BadRequest,
    Check,
    ClusterError,
    Executor,
    JobRef,
    JobSpec,
    JobState,
    Settings,
    Submission,
    command,
    shown,
)
from dssr_core.batch import (
    CLUSTER_USER_PATTERN,
    PREFIX,
    BatchConnector,
    EndedJob,
    JobPlan,
    QueuedJob,
    script_command,
    submit_once,
)

from .attempt import SshAttempt, first_line
from .parsing import MAX_JOBID, job_state, parse_accounting, parse_qstat, wrap_order
from .script import CANCELLED_FILE, JOBID_FILE, QsubRequest, batch_script, submission_script
from .settings import GESettings

#: at most this many job ids per pass over the accounting file
ACCT_BATCH = 50
#: ``sbatch_<flag>`` extras that would undo what the connector decides (qsub's own flag names)
RESERVED_FLAGS = frozenset(
    {"N", "o", "e", "j", "i", "wd", "cwd", "S", "b", "pe", "h", "hold_jid", "terse", "sync", "t", "V", "v", "w", "@"}
    | {"C", "shell", "now", "clear", "u", "A", "notify", "l", "q"}
)
_FLAG = re.compile(r"^[A-Za-z][A-Za-z_]{0,15}$")


class NotAccountedYet(ClusterError):
    """A job that started and ended but whose record is not in the accounting file yet."""


class GridEngineConnector(BatchConnector):
    name = "gridengine"
    scheduler = "Grid Engine"
    max_jobid = MAX_JOBID
    default_executor = "singularity"
    cfg: GESettings

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, GESettings.from_settings(settings))

    # -- the scheduler's hooks ------------------------------------------------------------
    def _run(self, cmd: str, what: str) -> str:
        result = self.shell.run(cmd)
        if result.rc != 0:
            raise ClusterError(f"{what} failed on the cluster: {first_line(result.stderr or result.stdout)}")
        return result.stdout

    def queue(self) -> list[QueuedJob]:
        """Every ``jarvice_`` job of every user: one ``qstat`` (the service user is an operator)."""
        text = self._run("date '+%Y-%m-%dT%H:%M:%S' && " + command("qstat", "-xml", "-u", "*", "-g", "t"), "qstat")
        return parse_qstat(text)

    def accounting(self, jobids: Sequence[str]) -> dict[str, EndedJob]:
        """The ends of ``jobids``: one pass over the accounting file per 50 ids."""
        ids = sorted(set(jobids), key=int)
        records: dict[str, EndedJob] = {}
        for start in range(0, len(ids), ACCT_BATCH):
            chunk = ids[start : start + ACCT_BATCH]
            # the job number is the 40th field from the right: a colon in a job name cannot shift it
            awk = command("awk", "-F:", "-v", f"ids=,{','.join(chunk)},", 'NF >= 45 && index(ids, "," $(NF-39) ",")')
            text = self._run(f'{awk} "{self.cfg.accounting_file}"', "accounting")
            records.update(parse_accounting(text, chunk))
        return records

    def job_state(self, state: str) -> JobState:
        return job_state(state)

    def id_order(self, jobids: Iterable[str]) -> Callable[[str], int]:
        return wrap_order(jobids)

    def submit_job(self, plan: JobPlan) -> Submission:
        spec, files, launch = plan.spec, plan.files, plan.launch
        login = self.mapping.login_for(spec.identity.email if spec.identity else None)
        request = self._request(spec, plan.name, files.output, files.job_dir)
        script = batch_script(files, spec.gpus, launch.success_marker)
        text = submission_script(
            request, files, {files.node_script: launch.node_script, files.batch_script: script}, dict(launch.secrets)
        )
        attempt = SshAttempt(self.pool, login, plan.name, text)
        jobid, existed = submit_once(attempt, keep_held=spec.held, order=attempt.order)
        shown_script = f"{script}\n# ---- {files.node_script} ----\n{launch.node_script}"
        return Submission(jobid, script=shown_script, existed=existed)

    def _request(self, spec: JobSpec, name: str, output: str, workdir: str) -> QsubRequest:
        resources: dict[str, str] = {}
        if spec.walltime:
            resources["h_rt"] = _walltime(spec.walltime)
        if spec.memory_gb:
            resources["h_vmem"] = f"{spec.memory_gb}G"
        if spec.gpus:
            if not self.cfg.gpu_resource:
                raise BadRequest("This Grid Engine downstream has no GPU resource (JARVICE_GE_GPU_RESOURCE).")
            resources[self.cfg.gpu_resource] = str(spec.gpus)
        if spec.licenses:
            raise BadRequest("Grid Engine has no licenses: ask for a consumable resource with sbatch_l instead.")
        for flag in spec.scheduler_flags:
            if flag in RESERVED_FLAGS or not _FLAG.match(flag):
                raise BadRequest(f"The scheduler flag -{shown(flag)} is set by this downstream and cannot be given.")
        return QsubRequest(
            name=name,
            output=output,
            workdir=workdir,
            pe=self.cfg.pe,
            nodes=spec.nodes,
            queue=spec.partition or self.cfg.queue,
            resources=resources,
            extra=dict(spec.scheduler_flags),
        )

    def cancel(self, job: QueuedJob, force: bool) -> None:
        """Mark the job cancelled (its account string, and a file in its folder for a job that never
        started), then ``qdel``: Grid Engine kills at once, there is no TERM first, and ``force`` adds
        nothing (``qdel -f`` hung for over a minute on 8.1.9 with a healthy execd; docs/gridengine.md)."""
        mark = f"{self.cfg.layout.job_dir(job.user, job.name)}/{CANCELLED_FILE}"
        script = (
            f"echo {command(job.jobid)} > {command(mark)} 2>/dev/null || true\n"
            f"qalter -A dssr_cancelled {command(job.jobid)} >/dev/null 2>&1 || true\n"
            f"{command('qdel', job.jobid)}\n"
        )
        remote, data = script_command(script)
        result = self.shell.run(remote, stdin=data)
        if result.rc != 0 and "does not exist" not in result.stdout + result.stderr:
            raise ClusterError(f"qdel failed: {first_line(result.stderr or result.stdout)}")

    def hold_job(self, job: QueuedJob) -> None:
        self._run(command("qhold", "-h", "u", job.jobid), "qhold")

    def release_job(self, job: QueuedJob) -> None:
        self._run(command("qrls", job.jobid), "qrls")

    def show(self, job: QueuedJob) -> str:
        return self._run(command("qstat", "-j", job.jobid), "qstat -j")

    def ping(self) -> None:
        self.pool.banner()
        self._run(command("qstat", "-u", self.cfg.service_user), "qstat")

    # -- what accounting does not know -------------------------------------------------------
    def ended_elsewhere(self, ref: JobRef) -> EndedJob | None:
        """A job deleted before it started (Grid Engine accounts nothing): the mark ``cancel`` left."""
        for owner, cancelled, started in self._folders(ref):
            if cancelled == ref.jobid:
                return EndedJob(
                    ref.jobid, PREFIX + ref.name, owner, JobState.CANCELLED, "CANCELLED (deleted before it started)"
                )
            if started == ref.jobid:
                raise NotAccountedYet(f"Job {ref.jobid} has ended but is not in the accounting file yet; ask again.")
        return None

    def owner(self, ref: JobRef) -> str | None:
        """As every batch connector's, and while the end is not accounted yet, the folder's owner."""
        try:
            return super().owner(ref)
        except NotAccountedYet:
            return next((o for o, cancelled, started in self._folders(ref) if ref.jobid in (cancelled, started)), None)

    def _folders(self, ref: JobRef) -> list[tuple[str, str, str]]:
        """(owner, id in the cancel mark, id the job wrote when it started) of each user's folder of this name."""
        pattern = f"{command(self.cfg.layout.root)}/users/*/{command(PREFIX + ref.name)}"
        script = (
            f'for d in {pattern}; do [ -d "$d" ] || continue; u=${{d%/*}}; '
            f'printf "%s\\037%s\\037%s\\n" "${{u##*/}}" "$(cat "$d/{CANCELLED_FILE}" 2>/dev/null)" '
            f'"$(cat "$d/{JOBID_FILE}" 2>/dev/null)"; done\n'
        )
        remote, data = script_command(script)
        result = self.shell.run(remote, stdin=data)
        rows = [line.split("\x1f") for line in result.stdout.splitlines()]
        return [(r[0], r[1].strip(), r[2].strip()) for r in rows if len(r) == 3 and CLUSTER_USER_PATTERN.match(r[0])]

    # -- checks and report --------------------------------------------------------------------
    def scheduler_checks(self, executor: Executor | None) -> Iterator[Check]:
        from .doctor import scheduler_checks  # only `dssr doctor` needs it

        return scheduler_checks(self)

    def describe(self) -> Mapping[str, str]:
        return {
            **super().describe(),
            "parallel environment": self.cfg.pe,
            "queue": self.cfg.queue or "(Grid Engine's choice)",
            "user-id mapping": self.mapping.path,
        }


def _walltime(text: str) -> str:
    """``HH:MM:SS`` or ``D-HH:MM:SS`` (Slurm's syntax, the upstream's) -> Grid Engine's ``h_rt`` seconds."""
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = clock.split(":")
    if not days.isdigit() or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise BadRequest(f"The time limit {shown(text)} is not HH:MM:SS or D-HH:MM:SS.")
    h, m, s = ([0] * (3 - len(parts)) + [int(p) for p in parts]) if len(parts) > 1 else (0, int(parts[0]), 0)
    return str(int(days) * 86400 + h * 3600 + m * 60 + s)
