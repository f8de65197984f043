"""The running interactive jobs of one downstream: their ``info`` answer and the proxy's targets.

Nothing here is stored beyond caches: whether a job is interactive is read
from its folder on the cluster (the marker its first node writes when the app
starts), its label and secrets are derived again from the key
(:class:`~dssr_core.interactive.InteractiveSettings`), and its state comes from
the connector's shared snapshot.  Only a RUNNING job that wrote the marker,
reached at the first of its own nodes, is ever a target, on the port its URL
template names (when the site allows that port) or else on the site's service port.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ._connector import Connector, Stream
from ._errors import ClusterError, DssrError
from ._interactive import HELP_FILE, LABEL_PATTERN, MARKER_FILE, URL_FILE, InteractiveSettings, ServiceAccess
from ._job import JobInfo, JobRef, JobState, JobStatus

log = logging.getLogger("dssr_core.services")  # its name in logs, stable

#: seconds a job found not interactive (no marker yet) is not asked again: short, since the marker of a
#: starting job is what its link waits for
NEGATIVE_TTL = 1.0
#: seconds ``info`` waits for the app's port to accept a connection
READY_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServiceFiles:
    """What the job's first node left in its service folder."""

    url: str | None
    help: str | None


@dataclass(frozen=True)
class Target:
    """Where the proxy sends a request: the job, its first node, the service port."""

    ref: JobRef
    node: str
    port: int
    access: ServiceAccess


class JobServices:
    """Interactive jobs of ``connector``: ``info``, label resolution, and the tunnels opened to them."""

    def __init__(self, connector: Connector, settings: InteractiveSettings) -> None:
        if settings.domain is None:
            raise ValueError("JobServices needs JARVICE_JOBS_DOMAIN")
        self.connector = connector
        self.settings = settings
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], ServiceFiles] = {}
        self._not_interactive: dict[tuple[str, str], float] = {}
        #: the port each job's app was found listening on (chosen once per job)
        self._ready: dict[tuple[str, str], int] = {}
        self._labels: dict[str, tuple[str, str]] = {}
        self._tunnels: dict[tuple[str, str], dict[int, Callable[[], None]]] = {}
        self._next_id = 0

    # -- what the upstream asks ------------------------------------------------
    def info(self, ref: JobRef) -> JobInfo:
        """The job's help page once written, and its ``url`` once the app's port accepts connections."""
        status = self.connector.status(ref)
        if status is None or status.state is not JobState.RUNNING or not status.nodes:
            return JobInfo()
        files = self.service_files(status)
        if files is None:
            return JobInfo()
        port = self.app_port(status, files)
        access = self.settings.access(ref.name, ref.number)
        url = access.connect_url(files.url, user=status.owner or "")
        help_page = access.help_page(files.help, url, user=status.owner or "") if files.help else None
        return JobInfo(url=url if port is not None else None, help=help_page)

    def app_port(self, status: JobStatus, files: ServiceFiles) -> int | None:
        """The port the app listens on, on the job's first node: the first of
        :meth:`InteractiveSettings.ports_for` that accepts a connection, remembered
        for the job; None while none does."""
        key = _key(status.ref)
        with self._lock:
            known = self._ready.get(key)
        if known is not None:
            return known
        for port in self.settings.ports_for(files.url):
            try:
                stream = self.connector.open_service(status.nodes[0], port, READY_TIMEOUT)
            except ClusterError as exc:
                log.debug("job %s: port %s not ready: %s", status.ref.jobid, port, exc)
                continue
            _close(stream)
            with self._lock:
                self._ready[key] = port
                self._files[key] = files  # what the app was found with: read no more
            return port
        return None

    def service_files(self, status: JobStatus) -> ServiceFiles | None:
        """The job's URL template and help page; None while the job has not marked itself interactive.

        They are read again on each call until :meth:`app_port` finds the app (an upstream template's
        first container may be an init container without ``/etc/NAE``, the app's container comes later
        with its files), then kept for the job."""
        key = _key(status.ref)
        with self._lock:
            known = self._files.get(key)
            checked = self._not_interactive.get(key)
        if known is not None:
            return known
        if checked is not None and time.monotonic() - checked < NEGATIVE_TTL:
            return None
        if self.connector.job_file(status, MARKER_FILE) is None:
            with self._lock:
                self._not_interactive[key] = time.monotonic()
            return None
        files = ServiceFiles(
            url=self.connector.job_file(status, URL_FILE), help=self.connector.job_file(status, HELP_FILE)
        )
        with self._lock:
            self._not_interactive.pop(key, None)
        return files

    # -- what the proxy asks -----------------------------------------------------
    def resolve(self, label: str) -> Target | None:
        """The running interactive job whose label is ``label``, or None (whatever the reason)."""
        if not LABEL_PATTERN.match(label):
            return None
        number = int(label.split("-", 1)[0])
        running = {_key(s.ref): s for s in self.connector.snapshot() if s.state is JobState.RUNNING and s.nodes}
        with self._lock:
            known = self._labels.get(label)
        status = running.get(known) if known else None
        if status is None:
            status = next((s for s in running.values() if self.settings.label_matches(label, s.ref.name)), None)
            if status is None:
                return None
            with self._lock:
                self._labels[label] = _key(status.ref)
        files = self.service_files(status)
        if files is None:
            return None
        ref = JobRef(status.ref.name, number, status.ref.jobid)
        port = self.app_port(status, files) or self.settings.service_port
        return Target(ref, status.nodes[0], port, self.settings.access(ref.name, number))

    def connect(self, target: Target, timeout: float = 10.0) -> Stream:
        """A stream to the target's node and port (``ClusterError`` when the app does not accept it)."""
        return self.connector.open_service(target.node, target.port, timeout)

    # -- tunnels --------------------------------------------------------------------
    def track(self, ref: JobRef, close: Callable[[], None]) -> int:
        """Remember an open tunnel to ``ref`` (closed by :meth:`close_job` or :meth:`reap`); returns its id."""
        with self._lock:
            self._next_id += 1
            self._tunnels.setdefault(_key(ref), {})[self._next_id] = close
            return self._next_id

    def untrack(self, ref: JobRef, tunnel: int) -> None:
        with self._lock:
            tunnels = self._tunnels.get(_key(ref))
            if tunnels is not None:
                tunnels.pop(tunnel, None)
                if not tunnels:
                    del self._tunnels[_key(ref)]

    def open_tunnels(self) -> int:
        with self._lock:
            return sum(len(t) for t in self._tunnels.values())

    def close_job(self, ref: JobRef) -> int:
        """Close every tunnel to the job (it ended or was terminated); returns how many."""
        with self._lock:
            closers = list(self._tunnels.pop(_key(ref), {}).values())
            self._forget(_key(ref))
        for close in closers:
            close()
        if closers:
            log.info("job %s: closed %d tunnel(s) to its application", ref.jobid, len(closers))
        return len(closers)

    def reap(self) -> None:
        """Close the tunnels of jobs that are no longer running, and forget what was cached about them."""
        try:
            running = {_key(s.ref) for s in self.connector.snapshot() if s.state is JobState.RUNNING}
        except DssrError as exc:
            log.debug("interactive jobs: no snapshot to check tunnels against: %s", exc)
            return
        with self._lock:
            gone = [k for k in self._tunnels if k not in running]
            stale = [k for k in (*self._files, *self._ready, *self._not_interactive) if k not in running]
            for key in stale:
                self._forget(key)
        for name, jobid in gone:
            self.close_job(JobRef(name, 0, jobid))

    def _forget(self, key: tuple[str, str]) -> None:
        """Drop the caches of one job (the lock is held)."""
        self._files.pop(key, None)
        self._ready.pop(key, None)
        self._not_interactive.pop(key, None)
        for label in [label for label, k in self._labels.items() if k == key]:
            del self._labels[label]


def _key(ref: JobRef) -> tuple[str, str]:
    return (ref.name, ref.jobid)


def _close(stream: Stream) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - closing a stream that broke already
        pass
