"""Downstream: the façade the HTTP server and library users call.

It holds one connector and one executor and speaks the job model only
(:class:`JobSpec` in; :class:`Submission`, :class:`JobStatus`,
:class:`ExitStatus`, :class:`JobInfo` out): the legacy wire format is
``dssr_server``'s.  It does no I/O of its own: all of it goes through the connector.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from . import metrics
from ._config import CONNECTOR_VARIABLE, EXECUTOR_VARIABLE, DownstreamSettings, Settings, choose_plugins
from ._connector import Connector, split_by_state
from ._errors import BadRequest, ClusterError, DssrError
from ._executor import Executor
from ._interactive import JOBS_DOMAIN_VARIABLE, InteractiveSettings, ServiceAccess
from ._job import ClusterInfo, ExitStatus, FileEntry, JobInfo, JobRef, JobSpec, JobStatus, OutputChunk, Submission
from ._plugins import load_connector, load_executor
from ._services import JobServices

if TYPE_CHECKING:  # PyJWT is imported only when a verifier is made
    from ._identity import TokenVerifier

log = logging.getLogger("dssr_core.downstream")  # its name in logs, stable


class Downstream:
    """One connector + one executor: submit, follow and control jobs."""

    def __init__(
        self,
        connector: Connector,
        executor: Executor,
        *,
        verifier: TokenVerifier | None = None,
        interactive: InteractiveSettings | None = None,
    ) -> None:
        self.connector = connector
        self.executor = executor
        self.verifier = verifier
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        #: interactive jobs' settings (always set: the proxy's address is read from them)
        self.interactive = interactive or InteractiveSettings(domain=None)
        #: the running interactive jobs (None when JARVICE_JOBS_DOMAIN is unset)
        self.services = (
            JobServices(connector, self.interactive)
            if self.interactive.enabled and connector.supports_interactive
            else None
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        connector: str | None = None,
        executor: str | None = None,
    ) -> "Downstream":
        """Build from the environment (``JARVICE_BAREMETAL_CONNECTOR`` etc.); names given here win."""
        settings = choose_plugins(settings or Settings(), connector, executor)
        plugins = DownstreamSettings.from_settings(settings)
        # an error names the variable that chose the plugin (or its flag: Settings.label), not a name given here
        conn = load_connector(plugins.connector, settings, setting=None if connector else CONNECTOR_VARIABLE)
        try:
            execu = load_executor(plugins.executor, settings, setting=None if executor else EXECUTOR_VARIABLE)
            verifier = None
            if conn.requires_identity:
                from ._identity import TokenVerifier

                verifier = TokenVerifier.from_settings(settings)
            interactive = InteractiveSettings.from_settings(settings)
        except BaseException:
            conn.close()
            raise
        return cls(conn, execu, verifier=verifier, interactive=interactive)

    # -- submission ---------------------------------------------------------
    def submit(self, spec: JobSpec) -> Submission:
        """Submit a job (native or parsed); idempotent by name."""
        if self.connector.requires_identity and spec.identity is None:
            raise BadRequest("This downstream runs jobs as cluster users: the submission needs a verified identity.")
        if spec.interactive:
            spec = spec.replace(service=self._service_access(spec))
        log.info("submitting job %s (%s node(s))", spec.name, spec.nodes)
        submission = self.connector.submit(spec, self.executor)
        metrics.recorder().submission(existed=submission.existed)
        log.info(
            "job %s %s %s", spec.name, "already exists as" if submission.existed else "submitted as", submission.jobid
        )
        return submission

    def _service_access(self, spec: JobSpec) -> ServiceAccess:
        if not self.interactive.enabled:
            raise BadRequest(
                f"This downstream cannot give interactive jobs an address: set {JOBS_DOMAIN_VARIABLE} "
                "(e.g. jobs.example.org, or portal.example.org/job$ for path-based routing) and "
                "JARVICE_DSSR_INTERACTIVE_KEY on dssr-server, then restart it (see docs/interactive.md)."
            )
        if not self.connector.supports_interactive:
            raise BadRequest(f"The {self.connector.name} connector cannot reach interactive jobs.")
        return self.interactive.access(spec.name, spec.number)

    # -- state --------------------------------------------------------------
    def jobs(self) -> Sequence[JobStatus]:
        """Every queued or running job (the connector's snapshot); their counts by state go to metrics."""
        jobs = self.connector.snapshot()
        metrics.recorder().jobs_seen(Counter(job.state.value for job in jobs))
        return jobs

    def running(self) -> list[JobStatus]:
        """The running jobs (from one snapshot)."""
        running, _ = split_by_state(self.jobs())
        return running

    def queued(self) -> list[JobStatus]:
        """The queued jobs, held ones included (from one snapshot)."""
        _, queued = split_by_state(self.jobs())
        return queued

    def runstatus(self, ref: JobRef) -> JobStatus | None:
        """The job's state, nodes and elapsed time; None when it is neither queued nor running."""
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

    def wait(
        self, ref: JobRef, timeout: float | None = None, *, interval: float = 0.5, collect: bool = False
    ) -> ExitStatus:
        """Wait until the job has ended and return how (:meth:`exitstatus`).

        ``timeout`` is in seconds (None: no limit); when it passes first, a transient
        :class:`ClusterError` says so.  A job this downstream does not know is not
        waited for: its state is ``JobState.UNKNOWN`` at once.  While the job is
        queued or running, its status is asked for every ``interval`` seconds; a
        scheduler whose record of the end is not final yet is asked again.
        Nothing is collected unless ``collect`` is true.
        """
        if timeout is not None and not timeout >= 0:  # NaN included
            raise BadRequest(f"The timeout must be a number of seconds >= 0, not {timeout!r}.")
        if not interval > 0:
            raise BadRequest(f"The interval must be a number of seconds > 0, not {interval!r}.")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.connector.status(ref) is None:
                try:
                    return self.exitstatus(ref, collect=collect)
                except ClusterError as exc:
                    if not exc.transient:
                        raise
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ClusterError(f"Job {ref.jobid} ({ref.name}) has not ended within {timeout:g} s.", transient=True)
            time.sleep(interval if left is None else min(interval, left))

    # -- control ------------------------------------------------------------
    def terminate(self, ref: JobRef, force: bool = False) -> None:
        log.info("terminating job %s (%s)%s", ref.name, ref.jobid, " at once" if force else "")
        self.connector.terminate(ref, force=force)
        if self.services is not None:
            self.services.close_job(ref)

    def release(self, ref: JobRef) -> None:
        self.connector.release(ref)

    def hold(self, ref: JobRef) -> None:
        self.connector.hold(ref)

    def read_output(self, ref: JobRef, offset: int, limit: int = 65536) -> OutputChunk:
        return self.connector.read_output(ref, offset, limit)

    def cluster(self) -> ClusterInfo:
        return self.connector.cluster()

    def events(self, ref: JobRef) -> str:
        return self.connector.events(ref)

    def tail(self, ref: JobRef, lines: int = 100) -> str:
        return self.connector.tail(ref, Connector.check_lines(lines))

    def list_files(self, path: str, details: bool = False) -> Sequence[FileEntry]:
        return self.connector.list_files(path, details)

    def info(self, ref: JobRef) -> JobInfo:
        """What to show about the job; for an interactive job ``url`` is set once its app accepts connections."""
        if self.services is not None:
            return self.services.info(ref)
        return self.connector.info(ref)

    # -- health -------------------------------------------------------------
    def healthy(self) -> bool:
        try:
            self.connector.ping()
        except DssrError as exc:
            log.warning("cluster check failed: %s", exc)
            return False
        return True

    def local_faults(self) -> list[str]:
        """The connector's failed :meth:`~dssr_core.Connector.local_checks`, one line each: faults
        of this host's settings it cannot work without (``dssr-server`` refuses to start on any)."""
        return [check.why for check in self.connector.local_checks() if not check.ok and check.blocks]

    def check(self) -> list[str]:
        """The start-up report: the failed local checks the connector works on without (a bad entry of a
        mapping file), then each failed check of :meth:`Connector.diagnose <dssr_core.Connector.diagnose>`
        without node probes: ``dssr doctor``'s path, one sentence each (empty when all is well).  The
        server warns of each and serves on."""
        local = [check.why for check in self.connector.local_checks() if not check.ok and not check.blocks]
        return local + [check.why for check in self.connector.diagnose(None) if not check.ok]

    def readiness(self, max_age: float) -> tuple[bool, dict[str, Any]]:
        """(ready, reason) from the connector's last contact with the cluster; never contacts it.

        Ready when that contact went well less than ``max_age`` seconds ago, or
        when the connector does not track its contacts.
        """
        contact = self.connector.last_contact()
        if contact is None:
            return True, {"status": "OK", "reason": f"the {self.connector.name} connector does not report its contacts"}
        age = round(contact.age(), 1)
        if not contact.ok:
            return False, {"status": "BAD", "reason": contact.error, "age": age}
        if age > max_age:
            return False, {
                "status": "BAD",
                "reason": f"no contact with the cluster for {age:g} s (more than {max_age:g} s)",
                "age": age,
            }
        return True, {"status": "OK", "age": age}

    def start_heartbeat(self, interval: float) -> None:
        """Keep the last contact fresh while nobody polls: a background thread reads the job
        snapshot whenever the latest contact is older than ``interval`` seconds (no extra
        call to the cluster while the upstream polls).  Stopped by :meth:`close`."""
        if self._heartbeat is not None or self.connector.last_contact() is None:
            return

        def beat() -> None:
            wait = 0.0
            while not self._stop.wait(wait):
                contact = self.connector.last_contact()
                if contact is None or contact.age() >= interval or not contact.ok:
                    try:
                        self.jobs()
                    except DssrError as exc:
                        log.debug("heartbeat: %s", exc)
                    except Exception:
                        log.exception("heartbeat: the connector's snapshot raised")
                    contact = self.connector.last_contact()
                wait = max(1.0, interval - (contact.age() if contact is not None and contact.ok else 0.0))

        self._heartbeat = threading.Thread(target=beat, name="dssr-heartbeat", daemon=True)
        self._heartbeat.start()

    def describe(self) -> dict[str, str]:
        report = {"connector": self.connector.name, "executor": self.executor.name}
        report.update(self.connector.describe())
        report.update(self.executor.describe())
        if self.verifier is not None:
            report.update(self.verifier.describe())
        report.update(self.interactive.describe())
        return report

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(5)
        self.connector.close()
