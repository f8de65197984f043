"""Downstream: the façade the HTTP server and library users call.

It holds one connector and one executor, turns legacy requests into model
objects, and gives every answer in the model's terms.  It does no I/O of its
own: all of it goes through the connector.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from .config import ServerSettings, Settings
from .connector import Connector, split_by_state
from .errors import BadRequest, DssrError
from .executor import Executor
from .identity import TokenVerifier
from .job import ExitStatus, FileEntry, JobRef, JobSpec, JobStatus, Submission
from .plugins import load_connector, load_executor
from .upstream import parse_submission

log = logging.getLogger(__name__)


class Downstream:
    """One connector + one executor, with the legacy API's operations."""

    def __init__(
        self,
        connector: Connector,
        executor: Executor,
        *,
        verifier: TokenVerifier | None = None,
        script_key: str | None = None,
    ) -> None:
        self.connector = connector
        self.executor = executor
        self.verifier = verifier
        self.script_key = script_key or executor.name

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        connector: str | None = None,
        executor: str | None = None,
    ) -> "Downstream":
        """Build from the environment (``JARVICE_BAREMETAL_CONNECTOR`` etc.); names given here win."""
        settings = settings or Settings()
        server = ServerSettings.from_settings(settings)
        conn = load_connector(connector or server.connector, settings)
        try:
            execu = load_executor(executor or server.executor, settings)
            verifier = TokenVerifier.from_settings(settings) if conn.requires_identity else None
        except BaseException:
            conn.close()
            raise
        return cls(conn, execu, verifier=verifier, script_key=server.script_key or (executor or server.executor))

    # -- submission ---------------------------------------------------------
    def submit(self, spec: JobSpec) -> Submission:
        """Submit a job (native or parsed); idempotent by name."""
        if self.connector.requires_identity and spec.identity is None:
            raise BadRequest("This downstream runs jobs as cluster users: the submission needs a verified identity.")
        log.info("submitting job %s (%s node(s))", spec.name, spec.nodes)
        submission = self.connector.submit(spec, self.executor)
        log.info("job %s submitted as %s", spec.name, submission.jobid)
        return submission

    def submit_legacy(self, args: Mapping[str, Any]) -> Submission:
        """The legacy ``/submit`` request: parse, verify the bearer token, submit."""
        spec = parse_submission(args, self.script_key)
        if self.verifier is not None:
            spec = spec.replace(identity=self.verifier.verify_token(args.get("bearer")))
        return self.submit(spec)

    # -- state --------------------------------------------------------------
    def jobs(self) -> Sequence[JobStatus]:
        return self.connector.snapshot()

    def running(self) -> list[list[str]]:
        running, _ = split_by_state(self.connector.snapshot())
        return [[job.ref.name, job.ref.jobid] for job in running]

    def queued(self) -> list[list[str]]:
        _, queued = split_by_state(self.connector.snapshot())
        return [[job.ref.name, job.ref.jobid] for job in queued]

    def runstatus(self, ref: JobRef) -> JobStatus | None:
        return self.connector.status(ref)

    def exitstatus(self, ref: JobRef, *, collect: bool = True) -> ExitStatus:
        """How the job ended; then (``collect``) its files are removed on the cluster."""
        status = self.connector.exit_status(ref)
        if collect:
            try:
                self.connector.cleanup(ref)
            except DssrError as exc:
                log.warning("job %s: garbage collection failed: %s", ref.jobid, exc)
        return status

    # -- control ------------------------------------------------------------
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        log.info("terminating job %s (%s)%s", ref.name, ref.jobid, " at once" if force else "")
        self.connector.terminate(ref, force=force)

    def release(self, ref: JobRef) -> None:
        self.connector.release(ref)

    def events(self, ref: JobRef) -> str:
        return self.connector.events(ref)

    def tail(self, ref: JobRef, lines: int = 100) -> str:
        return self.connector.tail(ref, Connector.check_lines(lines))

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return self.connector.list_files(path, details)

    def info(self, ref: JobRef) -> Mapping[str, Any]:
        return self.connector.info(ref)

    # -- health -------------------------------------------------------------
    def healthy(self) -> bool:
        try:
            self.connector.ping()
        except DssrError as exc:
            log.warning("cluster check failed: %s", exc)
            return False
        return True

    def check(self) -> list[str]:
        return self.connector.check()

    def describe(self) -> dict[str, str]:
        report = {"connector": self.connector.name, "executor": self.executor.name}
        report.update(self.connector.describe())
        report.update(self.executor.describe())
        if self.verifier is not None:
            report.update(self.verifier.describe())
        return report

    def close(self) -> None:
        self.connector.close()
