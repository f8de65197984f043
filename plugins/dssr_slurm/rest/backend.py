"""RestBackend: the Slurm backend that talks to slurmrestd (``JARVICE_SLURM_INTERFACE=http``)."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import replace
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote, urlencode

from dssr_core import (
    BadRequest,
    Check,
    ClusterError,
    ClusterInfo,
    DssrError,
    Identity,
    Settings,
    Submission,
    failed,
    passed,
)
from dssr_core.batch import (
    CLUSTER_USER_PATTERN,
    Batcher,
    JobPlan,
    NamedJob,
    OnceAttempt,
    QueuedJob,
    ServiceShell,
    submit_once,
)

from ..backend import AcctRecord, BatchRequest, SlurmBackend, batch_request, named_job
from ..resources import parse_rest
from ..script import batch_script
from . import errors
from .adapter import Adapter, scontrol_text
from .judge import Judge
from .settings import RestSettings
from .tokens import ServiceToken, claims_of, scrub, slurm_user_of
from .transport import HttpClient, Items, Response
from .versions import SUPPORTED_VERSIONS, adapter_for, newest_supported, offered

log = logging.getLogger(__name__)

#: job ids per accounting call
ACCT_BATCH = 50
_JOBID = re.compile(r"^[0-9]+\Z")
#: claims naming the cluster user in a Slurm-accepted token
USER_CLAIMS = ("sun", "username", "preferred_username")


class RestBackend(SlurmBackend):
    """Slurm through slurmrestd; users submit with their own token, the rest uses the service token."""

    def __init__(
        self,
        settings: RestSettings,
        shell: ServiceShell | None,
        *,
        client: HttpClient | None = None,
        token: ServiceToken | None = None,
    ) -> None:
        self.settings = settings
        tunnel = None
        if settings.via_ssh:
            if shell is None:
                raise ValueError("JARVICE_SLURMRESTD_VIA_SSH=true needs the connector's SSH shell")
            tunnel = shell.open_tunnel
        self._client = client or HttpClient(
            settings.host, settings.port, timeout=settings.timeout, scheme=settings.scheme, tunnel=tunnel
        )
        self._token = token or ServiceToken(
            shell,
            fixed=settings.token,
            command_line=settings.token_command,
            lifespan=settings.token_lifespan,
            timeout=settings.timeout,
        )
        self._adapter: Adapter | None = None if settings.api_version == "auto" else adapter_for(settings.api_version)
        self._adapter_lock = threading.Lock()
        #: whether a job could ever run: the cluster's shape before a submission, slurmctld's look after a release
        self.judge = Judge(self._service, lambda: self.adapter, self.cancel, settings.shape_ttl)
        #: submit-once's listings of concurrent submissions, gathered into one GET jobs per round
        self.listings = Batcher(self._jobs_named)

    @classmethod
    def from_settings(cls, settings: Settings, ssh: ServiceShell | None) -> "RestBackend":
        return cls(RestSettings.from_settings(settings), ssh)

    def __repr__(self) -> str:
        return f"RestBackend({self.settings.url}, {self.settings.api_version}, via_ssh={self.settings.via_ssh})"

    # --- plumbing -------------------------------------------------------------------------

    @property
    def adapter(self) -> Adapter:
        """The adapter of the configured version; with ``auto``, of the newest version slurmrestd offers."""
        if self._adapter is None:
            with self._adapter_lock:
                if self._adapter is None:
                    response = self._service("GET", "/openapi/v3", "listing its API versions")
                    version = newest_supported(response.body, self.settings.url)
                    log.info("slurmrestd at %s: using REST API %s", self.settings.url, version)
                    self._adapter = adapter_for(version)
        return self._adapter

    def _service_headers(self) -> dict[str, str]:
        token = self._token.get()
        user = self.settings.user or slurm_user_of(claims_of(token))
        headers = {"X-SLURM-USER-TOKEN": token}
        if user:
            headers["X-SLURM-USER-NAME"] = user
        return headers

    def _service(
        self,
        method: str,
        path: str,
        what: str,
        body: dict[str, Any] | None = None,
        *,
        allow_gone: bool = False,
        items: Items | None = None,
    ) -> Response:
        """A call as the service account; a refused token is renewed once; failures are ClusterErrors."""
        for attempt in (1, 2):
            response = self._client.request(method, path, headers=self._service_headers(), body=body, items=items)
            if not errors.failed(response):
                return response
            if allow_gone and errors.is_gone(response):
                return response
            if errors.is_auth_failure(response) and attempt == 1:
                self._token.invalidate()
                continue
            raise errors.status_error(response, what)
        raise AssertionError("unreachable")

    @staticmethod
    def _jobid(jobid: str) -> str:
        if not _JOBID.match(str(jobid)):
            raise BadRequest(f"Job id {jobid!r} is not a Slurm job id.")
        return quote(str(jobid))

    # --- SlurmBackend ---------------------------------------------------------------------

    def queue(self) -> list[QueuedJob]:
        adapter, now = self.adapter, time.time()
        # converted as decoded: a 1,000-job answer never has all its jobs' objects in memory at once
        response = self._service(
            "GET", f"{adapter.slurm}/jobs", "listing jobs", items=("jobs", lambda item: adapter.queued(item, now))
        )
        jobs = response.body.get("jobs")
        return jobs if isinstance(jobs, list) else []

    def cluster(self) -> ClusterInfo:
        slurm = self.adapter.slurm
        nodes = self._service("GET", f"{slurm}/nodes", "listing nodes").body.get("nodes")
        parts = self._service("GET", f"{slurm}/partitions", "listing partitions").body.get("partitions")
        return parse_rest(nodes if isinstance(nodes, list) else [], parts if isinstance(parts, list) else [])

    def _jobs_named(self, names: list[str]) -> dict[str, list[QueuedJob]]:
        """The jobs of these names, from one ``GET jobs`` as the service account (coordinator of every
        user's account, so it sees every user's jobs)."""
        wanted = set(names)
        found: dict[str, list[QueuedJob]] = {name: [] for name in names}
        for job in self.queue():
            if job.name in wanted:
                found[job.name].append(job)
        return found

    def accounting(self, jobids: Iterable[str]) -> dict[str, AcctRecord]:
        wanted = [self._jobid(j) for j in dict.fromkeys(str(j) for j in jobids)]
        adapter = self.adapter
        records: dict[str, AcctRecord] = {}
        for start in range(0, len(wanted), ACCT_BATCH):
            chunk = wanted[start : start + ACCT_BATCH]
            response = self._service("GET", adapter.accounting_query(chunk), "reading accounting", allow_gone=True)
            for item in response.body.get("jobs") or []:
                if isinstance(item, dict):
                    record = adapter.acct(item)
                    if record.jobid in chunk:
                        records[record.jobid] = record
        return records

    def user_for(self, identity: Identity | None) -> str:
        claims: Mapping[str, Any] = identity.claims if identity else {}
        for claim in USER_CLAIMS:
            value = claims.get(claim)
            if isinstance(value, str) and CLUSTER_USER_PATTERN.match(value):
                return value
        raise BadRequest("The bearer token names no cluster user (claim sun, username or preferred_username).")

    def submit(self, plan: JobPlan) -> Submission:
        """The batch script writes the job folder itself when the job starts (no shell as the
        user beforehand); the secrets travel in the job's environment, never in the text."""
        identity = plan.spec.identity
        if identity is None or not identity.token:
            raise BadRequest("Submitting through slurmrestd needs the user's bearer token, and there is none.")
        launch, files = plan.launch, plan.files
        script = batch_script(
            files, plan.spec.gpus, launch.success_marker, embed=(launch.node_script, sorted(launch.secrets))
        )
        request = batch_request(plan, script, workdir=files.user_scratch, environment=dict(launch.secrets))
        attempt = _RestAttempt(self, replace(request, hold=True), identity)
        jobid, existed = submit_once(attempt, keep_held=plan.spec.held)
        if not plan.spec.held:
            self.judge.after_release(jobid, request)
        return Submission(jobid, script=script, existed=existed)

    def submit_request(self, request: BatchRequest, identity: Identity) -> str:
        """``POST job/submit`` of ``request`` as the token's user, as it is (no once protocol): the job id."""
        adapter = self.adapter
        response = self.as_user("POST", f"{adapter.slurm}/job/submit", identity, adapter.submit_body(request))
        if errors.failed(response):
            raise self.user_error(response, identity)
        jobid = response.body.get("job_id")
        if not isinstance(jobid, int):
            raise ClusterError(f"slurmrestd accepted the job but gave no job id: {scrub(response.text[:200])}")
        log.info(
            "slurmrestd %s: submitted job %s (%s)%s as %s",
            adapter.version,
            jobid,
            request.name,
            " held" if request.hold else "",
            self.user_for(identity),
        )
        return str(jobid)

    def as_user(self, method: str, path: str, identity: Identity, body: dict[str, Any] | None = None) -> Response:
        """A call to slurmrestd as the token's user (what submit-once's steps are)."""
        headers = {"X-SLURM-USER-NAME": self.user_for(identity), "X-SLURM-USER-TOKEN": identity.token or ""}
        return self._client.request(method, path, headers=headers, body=body)

    def user_error(self, response: Response, identity: Identity) -> Exception:
        """The error of a failed call as the token's user: BadRequest for what Slurm refused, ClusterError else."""
        exp = identity.claims.get("exp") or claims_of(identity.token or "").get("exp")
        expired = isinstance(exp, (int, float)) and exp <= time.time()
        slurm_up = errors.connection_lost(response) and not expired and self._answers()
        return errors.submit_error(response, token_expired=expired, slurm_up=slurm_up)

    def cancel(self, jobid: str, signal: str | None = None) -> None:
        path = f"{self.adapter.slurm}/job/{self._jobid(jobid)}"
        if signal:
            if not re.fullmatch(r"(SIG)?[A-Z0-9]{1,10}", signal):
                raise BadRequest(f"Signal {signal!r} is not a signal name.")
            path += "?" + urlencode({"signal": signal})
        self._service("DELETE", path, f"cancelling job {jobid}", allow_gone=True)

    def release(self, jobid: str) -> None:
        adapter = self.adapter
        try:
            self._service(
                "POST", f"{adapter.slurm}/job/{self._jobid(jobid)}", f"releasing job {jobid}", adapter.release_body()
            )
        except ClusterError:
            self.judge.after_release(jobid)  # Slurm releases a job too big for its partition, then says so
            raise
        self.judge.after_release(jobid)

    def show(self, jobid: str) -> str:
        adapter = self.adapter
        response = self._service("GET", f"{adapter.slurm}/job/{self._jobid(jobid)}", f"reading job {jobid}")
        jobs = [j for j in response.body.get("jobs") or [] if isinstance(j, dict)]
        if not jobs:
            raise ClusterError(f"slurmrestd does not know job {jobid}.", transient=False)
        return scontrol_text(adapter.show_fields(jobs[0]))

    def ping(self) -> None:
        adapter = self.adapter
        response = self._service("GET", f"{adapter.slurm}/ping", "pinging slurmctld")
        if not adapter.pinged(response.body):
            raise ClusterError(f"slurmrestd at {self.settings.url} answers, but no slurmctld is up.")

    def diagnose(self) -> Iterator[Check]:
        """``dssr doctor``: slurmrestd answers, offers the configured version, accepts the service token."""
        url = self.settings.url
        try:
            response = self._client.request("GET", "/openapi/v3", headers={})
            if errors.is_auth_failure(response):  # some versions want a token even for their API description
                response = self._client.request("GET", "/openapi/v3", headers=self._service_headers())
        except DssrError as exc:
            yield failed(
                f"slurmrestd answers at {url}",
                f"{exc} Check JARVICE_SLURMRESTD_ADDR/_PORT/_VIA_SSH and that slurmrestd runs.",
            )
            return
        yield passed(f"slurmrestd answers at {url}")
        versions = offered(response.body)
        wanted = self.settings.api_version
        what = f"slurmrestd offers REST API {wanted}"
        usable = [v for v in versions if v in SUPPORTED_VERSIONS]
        if wanted == "auto" and not usable:
            yield failed(
                what,
                f"it offers {', '.join(versions) or 'none'}; this server speaks "
                f"{', '.join(SUPPORTED_VERSIONS)}: upgrade Slurm or this server",
            )
            return
        if wanted != "auto" and wanted not in versions:
            yield failed(
                what,
                f"it offers {', '.join(versions) or 'none'}: set JARVICE_SLURMRESTD_API_VERSION "
                "to one of them (or auto)",
            )
            return
        yield passed(what, (f"uses {usable[-1]}; " if wanted == "auto" else "") + f"offered: {', '.join(versions)}")
        what = "slurmrestd accepts the service token and reaches slurmctld"
        try:
            user = self._service_headers().get("X-SLURM-USER-NAME", "the token's user")
            self.ping()
        except DssrError as exc:
            yield failed(
                what,
                f"{exc} Fix: give a token signed with this cluster's jwt_key "
                "(JARVICE_SLURMRESTD_TOKEN, _TOKEN_COMMAND, or scontrol token over SSH) for a user "
                "Slurm knows (JARVICE_SLURMRESTD_USER); and check that slurmctld runs",
            )
            return
        yield passed(what, f"as {user}")

    def _answers(self) -> bool:
        try:
            self.ping()
        except ClusterError:
            return False
        return True

    def describe(self) -> dict[str, str]:
        return {"user-id mapping": "from the token", "slurmrestd": f"{self.settings.url} ({self.settings.api_version})"}

    def close(self) -> None:
        self._client.close()


class _RestAttempt(OnceAttempt):
    """One job's submission through slurmrestd, every call with the user's own token."""

    def __init__(self, backend: RestBackend, request: BatchRequest, identity: Identity) -> None:
        self.backend, self.request, self.identity = backend, request, identity
        self.user = backend.user_for(identity)
        #: the id of the job this attempt submitted
        self.submitted: str | None = None

    def _call(self, method: str, path: str, what: str, body: dict[str, Any] | None = None) -> Response:
        response = self.backend.as_user(method, path, self.identity, body)
        if errors.failed(response) and not (method == "DELETE" and errors.is_gone(response)):
            raise ClusterError(
                f"slurmrestd failed while {what} as {self.user}: {self.backend.user_error(response, self.identity)}"
            )
        return response

    def find(self) -> list[NamedJob]:
        """The jobs of the name and user in a ``GET jobs`` shared by the submissions asking at the same
        moment (:attr:`RestBackend.listings`); the user's own ``GET jobs`` when that listing lacks the job
        this attempt submitted (a service account that may not see this user's jobs)."""
        name = self.request.name
        jobs = [job for job in self.backend.listings.get([name]).get(name, []) if job.user == self.user]
        if self.submitted is not None and not any(job.jobid == self.submitted for job in jobs):
            jobs = self._own_listing()
        return [named_job(job) for job in jobs]

    def _own_listing(self) -> list[QueuedJob]:
        adapter = self.backend.adapter
        body = self._call("GET", f"{adapter.slurm}/jobs", "listing jobs").body
        now = time.time()
        jobs = (
            adapter.job(item, now)
            for item in body.get("jobs") or []
            if isinstance(item, dict) and item.get("name") == self.request.name
        )
        return [job for job in jobs if job.user == self.user]

    def submit_held(self) -> str:
        self.backend.judge.before_submission(self.request)
        self.submitted = self.backend.submit_request(self.request, self.identity)
        return self.submitted

    def cancel(self, jobids: Sequence[str]) -> None:
        for jobid in jobids:
            self._call("DELETE", f"{self.backend.adapter.slurm}/job/{RestBackend._jobid(jobid)}", "cancelling")

    def release(self, jobid: str) -> None:
        adapter = self.backend.adapter
        path = f"{adapter.slurm}/job/{RestBackend._jobid(jobid)}"
        self._call("POST", path, f"releasing job {jobid}", adapter.release_body())
