"""The Grid Engine connector: submit-once as the mapped user over SSH, one ``qstat`` per snapshot,
the accounting file in batches for ended jobs.  No job database: a job's owner comes from Grid Engine.

Job files are the Slurm connector's layout (``<scratch>/users/<owner>/jarvice_<name>.out`` and the
folder ``jarvice_<name>/``).  What Grid Engine cannot do as Slurm does is in docs/gridengine.md.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Sequence

from dssr_core import BadRequest, ClusterError, Connector, Executor, ExitStatus, FileEntry, JobRef, JobSpec
from dssr_core import JobState, JobStatus, LaunchContext, NotFound, Settings, Submission, command, numeric_id
from dssr_core import CLUSTER_USER_PATTERN, NAME_PATTERN, Batcher, Check, Contact, SharedSnapshot, UserMappingFile
from dssr_core import shown, submit_once

from .attempt import SshAttempt, first_line
from .parsing import MAX_JOBID, PREFIX, AcctRecord, GEJob, job_state, parse_accounting, parse_qstat, wrap_order
from .remote import FolderListing, ServiceShell, build_pool
from .script import CANCELLED_FILE, JOBID_FILE, QsubRequest, batch_script, submission_script
from .settings import GESettings

log = logging.getLogger(__name__)

#: lines of output returned by /exitstatus
EXIT_TAIL = 10_000
#: at most this many job ids per pass over the accounting file
ACCT_BATCH = 50
#: ``sbatch_<flag>`` extras that would undo what the connector decides (qsub's own flag names)
RESERVED_FLAGS = frozenset(
    {"N", "o", "e", "j", "i", "wd", "cwd", "S", "b", "pe", "h", "hold_jid", "terse", "sync", "t", "V", "v", "w", "@"}
    | {"C", "shell", "now", "clear", "u", "A", "notify", "l", "q"}
)
_FLAG = re.compile(r"^[A-Za-z][A-Za-z_]{0,15}$")


@dataclass(frozen=True)
class Queue:
    """One ``qstat`` answer, indexed once: every job by id, and this downstream's live jobs, one per name."""

    by_id: Mapping[str, GEJob]
    statuses: Sequence[JobStatus]

    @classmethod
    def of(cls, jobs: Sequence[GEJob]) -> "Queue":
        groups: dict[tuple[str, str], list[str]] = {}
        for job in jobs:
            groups.setdefault((job.name, job.user), []).append(job.jobid)
        first = {key: min(ids, key=wrap_order(ids)) for key, ids in groups.items()}
        statuses = [
            JobStatus(
                ref=JobRef(job.name[len(PREFIX) :], 0, job.jobid),
                state=job_state(job.state),
                nodes=job.nodes,
                elapsed=job.elapsed,
                owner=job.user,
                detail=job.state,
            )
            for job in jobs
            if first[(job.name, job.user)] == job.jobid
            and not job_state(job.state).finished
            and NAME_PATTERN.match(job.name[len(PREFIX) :])
        ]
        return cls({job.jobid: job for job in jobs}, tuple(statuses))


class GridEngineConnector(Connector):
    name = "gridengine"
    requires_identity = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.cfg = GESettings.from_settings(settings)
        self.pool = build_pool(self.cfg)
        self.shell = ServiceShell(self.pool, self.cfg)
        self.mapping = UserMappingFile(self.cfg.mapping_file)
        self._snapshot: SharedSnapshot[Queue] = SharedSnapshot(lambda: Queue.of(self.queue()), self.cfg.status_ttl)
        self._acct: Batcher[AcctRecord] = Batcher(self.accounting)
        self._listing = FolderListing(self.shell, self.cfg.pvcls_roots)
        self._started = time.time()

    # -- Grid Engine's own commands (the hooks a shared batch base would ask for) --------------
    def _run(self, cmd: str, what: str) -> str:
        result = self.shell.run(cmd)
        if result.rc != 0:
            raise ClusterError(f"{what} failed on the cluster: {first_line(result.stderr or result.stdout)}")
        return result.stdout

    def queue(self) -> list[GEJob]:
        """Every ``jarvice_`` job of every user: one ``qstat`` (the service user is an operator)."""
        text = self._run("date '+%Y-%m-%dT%H:%M:%S' && " + command("qstat", "-xml", "-u", "*", "-g", "t"), "qstat")
        return parse_qstat(text)

    def accounting(self, jobids: Sequence[str]) -> dict[str, AcctRecord]:
        """The accounting records of ``jobids``: one pass over the accounting file per 50 ids."""
        ids = sorted(set(jobids), key=int)
        records: dict[str, AcctRecord] = {}
        for start in range(0, len(ids), ACCT_BATCH):
            chunk = ids[start : start + ACCT_BATCH]
            # the job number is the 40th field from the right: a colon in a job name cannot shift it
            awk = command("awk", "-F:", "-v", f"ids=,{','.join(chunk)},", 'NF >= 45 && index(ids, "," $(NF-39) ",")')
            records.update(parse_accounting(self._run(f'{awk} "{self.cfg.accounting_file}"', "accounting"), chunk))
        return records

    # -- submission -----------------------------------------------------------------------
    def submit(self, spec: JobSpec, executor: Executor) -> Submission:
        name = PREFIX + spec.name
        login = self.mapping.login_for(spec.identity.email if spec.identity else None)
        files = self.cfg.layout.files(login.user, name)
        ctx = LaunchContext(
            scratch_root=self.cfg.scratch,
            cluster_user=login.user,
            user_scratch=files.user_scratch,
            job_dir=files.job_dir,
            secrets_file=files.secrets_file,
        )
        request = self._request(spec, name, files.output, files.job_dir)
        launch = executor.launch(spec, ctx)
        script = batch_script(files, spec.gpus, launch.success_marker)
        text = submission_script(
            request, files, {files.node_script: launch.node_script, files.batch_script: script}, dict(launch.secrets)
        )
        attempt = SshAttempt(self.pool, login, name, text)
        jobid, existed = submit_once(attempt, keep_held=spec.held, order=attempt.order)
        self._snapshot.invalidate()
        if existed:
            log.info("job %s already exists on the cluster as %s: not submitted again", name, jobid)
        return Submission(
            jobid, script=f"{script}\n# ---- {files.node_script} ----\n{launch.node_script}", existed=existed
        )

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

    # -- state ------------------------------------------------------------------------------
    def snapshot(self) -> Sequence[JobStatus]:
        return self._snapshot.get().statuses

    def status(self, ref: JobRef) -> JobStatus | None:
        found = [s for s in self._snapshot.get().statuses if s.ref.jobid == ref.jobid and s.ref.name == ref.name]
        return replace(found[0], ref=ref) if found else None

    def _find(self, ref: JobRef, *, fresh: bool = False) -> GEJob | None:
        """The job in the qmaster (BadRequest when that id is another job)."""
        if numeric_id(ref.jobid, MAX_JOBID) is None:
            raise BadRequest(f"Job id {shown(ref.jobid)} is not a Grid Engine job id (1 to {MAX_JOBID}).")
        if fresh:
            self._snapshot.invalidate()
        job = self._snapshot.get().by_id.get(ref.jobid)
        if job is not None and job.name != PREFIX + ref.name:
            raise BadRequest(f"Grid Engine job {ref.jobid} is not the job {ref.name!r}.")
        return job

    def _ended(self, ref: JobRef) -> tuple[JobState, str, str, str] | None:
        """(state, detail, elapsed, owner) of an ended job, from accounting, else from its folder."""
        record = self._acct.get([ref.jobid]).get(ref.jobid)
        if record is not None and record.name == PREFIX + ref.name:
            return record.state, record.detail, record.elapsed, record.user
        folders = self._folders(ref)
        for owner, cancelled, started in folders:
            if cancelled == ref.jobid:  # deleted before it started: Grid Engine accounts nothing
                return JobState.CANCELLED, "CANCELLED (deleted before it started)", "00:00:00", owner
            if started == ref.jobid:
                raise ClusterError(f"Job {ref.jobid} has ended but is not in the accounting file yet; ask again.")
        return None

    def _folders(self, ref: JobRef) -> list[tuple[str, str, str]]:
        """(owner, id in the cancel mark, id the job wrote when it started) of each user's folder of this name."""
        pattern = f"{command(self.cfg.layout.root)}/users/*/{command(PREFIX + ref.name)}"
        script = (
            f'for d in {pattern}; do [ -d "$d" ] || continue; u=${{d%/*}}; '
            f'printf "%s\\037%s\\037%s\\n" "${{u##*/}}" "$(cat "$d/{CANCELLED_FILE}" 2>/dev/null)" '
            f'"$(cat "$d/{JOBID_FILE}" 2>/dev/null)"; done\n'
        )
        result = self.shell.run("bash -s", stdin=script.encode())
        rows = [line.split("\x1f") for line in result.stdout.splitlines()]
        return [(r[0], r[1].strip(), r[2].strip()) for r in rows if len(r) == 3 and CLUSTER_USER_PATTERN.match(r[0])]

    def exit_status(self, ref: JobRef) -> ExitStatus:
        job = self._find(ref)
        if job is not None:
            state, detail, elapsed, owner = job_state(job.state), job.state, job.elapsed, job.user
            if not state.finished:
                raise ClusterError(
                    f"Job {ref.jobid} has not finished yet (Grid Engine says {detail}); ask again later."
                )
        else:
            ended = self._ended(ref)
            if ended is None:
                return ExitStatus(ref=ref, state=JobState.UNKNOWN, detail="UNKNOWN")
            state, detail, elapsed, owner = ended
        if not CLUSTER_USER_PATTERN.match(owner):
            return ExitStatus(ref=ref, state=state, elapsed=elapsed, detail=detail)
        output = self._read_tail(self.cfg.layout.output_file(owner, PREFIX + ref.name), EXIT_TAIL, missing_ok=True)
        return ExitStatus(ref=ref, state=state, elapsed=elapsed, output=output, detail=detail)

    def _owner(self, ref: JobRef) -> str | None:
        job = self._find(ref)
        if job is not None:
            return job.user
        record = self._acct.get([ref.jobid]).get(ref.jobid)
        if record is not None and record.name == PREFIX + ref.name:
            return record.user
        return next(
            (owner for owner, cancelled, started in self._folders(ref) if ref.jobid in (cancelled, started)), None
        )

    def cleanup(self, ref: JobRef) -> None:
        owner = self._owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            return
        result = self.shell.run(self.cfg.layout.removal(owner, PREFIX + ref.name))
        if result.rc != 0:
            raise ClusterError(f"Removing the files of job {ref.jobid} failed: {result.stderr.strip()[:300]}")

    # -- control ------------------------------------------------------------------------------
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        """Mark the job cancelled (its account string, and a file in its folder for a job that never
        started), then ``qdel``: Grid Engine kills at once, there is no TERM first, and ``force`` adds
        nothing (``qdel -f`` hung for over a minute on 8.1.9 with a healthy execd; docs/gridengine.md)."""
        job = self._find(ref, fresh=True)
        if job is None or job_state(job.state).finished:
            return
        mark = f"{self.cfg.layout.job_dir(job.user, job.name)}/{CANCELLED_FILE}"
        script = (
            f"echo {command(job.jobid)} > {command(mark)} 2>/dev/null || true\n"
            f"qalter -A dssr_cancelled {command(job.jobid)} >/dev/null 2>&1 || true\n"
            f"{command('qdel', job.jobid)}\n"  # qdel kills at once: ``force`` has nothing to add
        )
        result = self.shell.run("bash -s", stdin=script.encode())
        if result.rc != 0 and "does not exist" not in result.stdout + result.stderr:
            raise ClusterError(f"qdel failed: {first_line(result.stderr or result.stdout)}")
        self._snapshot.invalidate()

    def release(self, ref: JobRef) -> None:
        job = self._find(ref, fresh=True)
        if job is None:
            raise NotFound(f"Job {ref.jobid} is not queued: nothing to release.")
        self._run(command("qrls", job.jobid), "qrls")
        self._snapshot.invalidate()

    def events(self, ref: JobRef) -> str:
        job = self._find(ref, fresh=True)
        if job is None:
            return f"Job {ref.jobid} ({ref.name}) is no longer known to the qmaster."
        return self._run(command("qstat", "-j", job.jobid), "qstat -j")

    # -- files ----------------------------------------------------------------------------------
    def tail(self, ref: JobRef, lines: int) -> str:
        owner = self._owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            raise NotFound(f"Job {ref.jobid} has no output.")
        return self._read_tail(self.cfg.layout.output_file(owner, PREFIX + ref.name), lines, missing_ok=False)

    def _read_tail(self, path: str, lines: int, *, missing_ok: bool) -> str:
        result = self.shell.run(command("tail", "-n", int(lines), "--", path))
        if result.rc != 0:
            if "No such file" in result.stderr:
                if missing_ok:
                    return ""
                raise NotFound("The job has no output yet.")
            raise ClusterError(f"Reading the job output failed: {result.stderr.strip()[:300]}")
        return result.stdout

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return self._listing.list(path)

    # -- health -----------------------------------------------------------------------------------
    def ping(self) -> None:
        self.pool.banner()
        self._run(command("qstat", "-u", self.cfg.service_user), "qstat")

    def last_contact(self) -> Contact:
        return self._snapshot.last_contact or Contact(self._started, False, "no contact with the cluster yet")

    def diagnose(self, executor: Executor) -> Iterator[Check]:
        from .doctor import diagnose  # only `dssr doctor` needs it

        return diagnose(self, executor)

    def check(self) -> list[str]:
        problems = [self.shell.key_problem] if self.shell.key_problem else []
        problems.extend(self.mapping.problems())
        try:
            self.ping()
        except ClusterError as exc:
            problems.append(str(exc))
        return problems

    def describe(self) -> Mapping[str, str]:
        return {
            "cluster": f"{self.cfg.service_user}@{self.cfg.host}:{self.cfg.port}",
            "parallel environment": self.cfg.pe,
            "queue": self.cfg.queue or "(Grid Engine's choice)",
            "host key": self.pool.policy.describe(),
            "scratch": self.cfg.scratch,
            "user-id mapping": self.mapping.path,
            "status reuse": f"{self.cfg.status_ttl:g} s",
        }

    def close(self) -> None:
        self.pool.close()


def _walltime(text: str) -> str:
    """``HH:MM:SS`` or ``D-HH:MM:SS`` (Slurm's syntax, the upstream's) -> Grid Engine's ``h_rt`` seconds."""
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = clock.split(":")
    if not days.isdigit() or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise BadRequest(f"The time limit {shown(text)} is not HH:MM:SS or D-HH:MM:SS.")
    h, m, s = ([0] * (3 - len(parts)) + [int(p) for p in parts]) if len(parts) > 1 else (0, int(parts[0]), 0)
    return str(int(days) * 86400 + h * 3600 + m * 60 + s)
