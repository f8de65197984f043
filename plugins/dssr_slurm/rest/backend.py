"""RestBackend: the Slurm backend that talks to slurmrestd (``JARVICE_SLURM_INTERFACE=http``)."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Iterable, Iterator, Protocol
from urllib.parse import quote, urlencode

from dssr_core import BadRequest, Check, ClusterError, DssrError, Identity, Settings, command
from dssr_core.checks import failed, passed

from ..backend import AcctRecord, BatchRequest, SlurmBackend, SlurmJob
from . import errors
from .adapter import Adapter, scontrol_text
from .settings import RestSettings
from .tokens import ServiceToken, claims_of, scrub, slurm_user_of
from .transport import Channel, HttpClient, Response
from .versions import SUPPORTED_VERSIONS, adapter_for, newest_supported, offered

log = logging.getLogger(__name__)

#: job ids per accounting call
ACCT_BATCH = 50
#: the name slurmdbd gives a job's record for the first second or so, before the job's own
#: record arrives (seen on 22.05 for a job that ends right after it starts)
PLACEHOLDER_NAME = "allocation"
_JOBID = re.compile(r"^[0-9]+\Z")


class ServiceShell(Protocol):
    """The connector's SSH shell of the service user."""

    def run(self, command: str, *, timeout: float | None = None, idempotent: bool = True) -> Any: ...

    def open_tunnel(self, host: str, port: int) -> Channel: ...


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
        self._shell = shell
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
        self, method: str, path: str, what: str, body: dict[str, Any] | None = None, *, allow_gone: bool = False
    ) -> Response:
        """A call as the service account; a refused token is renewed once; failures are ClusterErrors."""
        for attempt in (1, 2):
            response = self._client.request(method, path, headers=self._service_headers(), body=body)
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

    def queue(self) -> list[SlurmJob]:
        adapter = self.adapter
        response = self._service("GET", f"{adapter.slurm}/jobs", "listing jobs")
        return adapter.queue(response.body, time.time())

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
        unfinished = sorted(j for j, r in records.items() if r.name == PLACEHOLDER_NAME)
        if unfinished:
            raise ClusterError(
                f"The accounting record of job(s) {', '.join(unfinished)} is not complete yet; ask again shortly."
            )
        return records

    def submit(self, request: BatchRequest, identity: Identity | None) -> str:
        if identity is None or not identity.token:
            raise BadRequest("Submitting through slurmrestd needs the user's bearer token, and there is none.")
        user = slurm_user_of(dict(identity.claims)) or request.user
        if not user:
            raise BadRequest("The bearer token names no Slurm user (claim sun, username or preferred_username).")
        adapter = self.adapter
        body = adapter.submit_body(request)
        headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": identity.token}
        response = self._client.request("POST", f"{adapter.slurm}/job/submit", headers=headers, body=body)
        if errors.failed(response):
            exp = identity.claims.get("exp") or claims_of(identity.token).get("exp")
            expired = isinstance(exp, (int, float)) and exp <= time.time()
            slurm_up = errors.connection_lost(response) and not expired and self._answers()
            raise errors.submit_error(response, token_expired=expired, slurm_up=slurm_up)
        jobid = response.body.get("job_id")
        if not isinstance(jobid, int):
            raise ClusterError(f"slurmrestd accepted the job but gave no job id: {scrub(response.text[:200])}")
        log.info("slurmrestd %s: submitted job %s (%s) as %s", adapter.version, jobid, request.name, user)
        return str(jobid)

    def cancel(self, jobid: str, signal: str | None = None) -> None:
        path = f"{self.adapter.slurm}/job/{self._jobid(jobid)}"
        if signal:
            if not re.fullmatch(r"(SIG)?[A-Z0-9]{1,10}", signal):
                raise BadRequest(f"Signal {signal!r} is not a signal name.")
            path += "?" + urlencode({"signal": signal})
        self._service("DELETE", path, f"cancelling job {jobid}", allow_gone=True)

    def release(self, jobid: str) -> None:
        adapter = self.adapter
        body = adapter.release_body()
        if body is None:
            self._scontrol_release(jobid)
            return
        self._service("POST", f"{adapter.slurm}/job/{self._jobid(jobid)}", f"releasing job {jobid}", body)

    def _scontrol_release(self, jobid: str) -> None:
        if self._shell is None:
            raise ClusterError(f"Releasing job {jobid} needs scontrol over SSH with REST API {self.adapter.version}.")
        result = self._shell.run(command("scontrol", "release", self._jobid(jobid)), timeout=self.settings.timeout)
        if result.rc != 0:
            raise ClusterError(f"scontrol release {jobid} failed: {scrub((result.stderr or result.stdout).strip())}")

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
            yield failed(f"slurmrestd answers at {url}", f"{exc} Check JARVICE_SLURMRESTD_ADDR/_PORT/_VIA_SSH "
                                                         "and that slurmrestd runs.")
            return
        yield passed(f"slurmrestd answers at {url}")
        versions = offered(response.body)
        wanted = self.settings.api_version
        what = f"slurmrestd offers REST API {wanted}"
        usable = [v for v in versions if v in SUPPORTED_VERSIONS]
        if wanted == "auto" and not usable:
            yield failed(what, f"it offers {', '.join(versions) or 'none'}; this server speaks "
                               f"{', '.join(SUPPORTED_VERSIONS)}: upgrade Slurm or this server")
            return
        if wanted != "auto" and wanted not in versions:
            yield failed(what, f"it offers {', '.join(versions) or 'none'}: set JARVICE_SLURMRESTD_API_VERSION "
                               "to one of them (or auto)")
            return
        yield passed(what, (f"uses {usable[-1]}; " if wanted == "auto" else "") + f"offered: {', '.join(versions)}")
        what = "slurmrestd accepts the service token and reaches slurmctld"
        try:
            user = self._service_headers().get("X-SLURM-USER-NAME", "the token's user")
            self.ping()
        except DssrError as exc:
            yield failed(what, f"{exc} Fix: give a token signed with this cluster's jwt_key "
                               "(JARVICE_SLURMRESTD_TOKEN, _TOKEN_COMMAND, or scontrol token over SSH) for a user "
                               "Slurm knows (JARVICE_SLURMRESTD_USER); and check that slurmctld runs")
            return
        yield passed(what, f"as {user}")

    def _answers(self) -> bool:
        try:
            self.ping()
        except ClusterError:
            return False
        return True

    def close(self) -> None:
        self._client.close()
