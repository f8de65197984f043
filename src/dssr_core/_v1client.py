"""``dssr --url``: the command line acting through a remote ``dssr-server``'s ``/v1`` API (no SSH key needed).

:class:`RemoteDownstream` answers the :class:`~dssr_core.Downstream` calls the
``dssr`` command makes, each with one or two HTTP requests, so every
subcommand prints what it prints locally.  The bearer token (the user's
identity token, or the server's shared token) comes from ``--token`` or
``DSSR_TOKEN``.  Problems come back as this project's errors: 404 a
:class:`NotFound`, 5xx or no answer a :class:`ClusterError`, any other refusal a
:class:`BadRequest` carrying the server's ``detail``.  Standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Sequence

from ._config import Settings
from ._downstream import Downstream
from ._errors import BadRequest, ClusterError, NotFound
from ._job import ExitStatus, JobRef, JobSpec, JobState, JobStatus, Submission

#: the variable holding the bearer token for ``--url`` (so that it stays off the command line)
TOKEN_VARIABLE = "DSSR_TOKEN"
TIMEOUT = 60.0
_SPEC_FIELDS = (
    "name",
    "number",
    "nodes",
    "cores",
    "gpus",
    "memory_gb",
    "walltime",
    "partition",
    "exclusive",
    "held",
    "image",
    "command",
)


def job_path(ref: JobRef) -> str:
    return "/v1/jobs/" + urllib.parse.quote(f"{ref.name}:{ref.number}:{ref.jobid}", safe=":+")


class RemoteDownstream(Downstream):
    """The calls of ``dssr`` answered by a remote server's ``/v1``."""

    def __init__(self, url: str, token: str | None = None) -> None:
        # Downstream.__init__ is not called: there is no connector here, only the server's /v1
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadRequest(f"--url {url!r} is not an http:// or https:// address.")
        self.url = url.rstrip("/")
        self.token = token
        self.verifier = None

    @classmethod
    def connect(cls, url: str, settings: Settings | None = None, token: str | None = None) -> "RemoteDownstream":
        return cls(url, token or (settings or Settings()).text(TOKEN_VARIABLE))

    # -- HTTP -----------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            raise _problem(err.code, err.read()) from None
        except (OSError, ValueError) as exc:
            raise ClusterError(f"The server at {self.url} does not answer ({exc}).") from None

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        _, raw = self._call(method, path, body)
        return json.loads(raw)

    # -- what dssr calls ------------------------------------------------------------
    def submit(self, spec: JobSpec) -> Submission:
        body: dict[str, Any] = {key: getattr(spec, key) for key in _SPEC_FIELDS if getattr(spec, key) is not None}
        if spec.environment:
            body["environment"] = dict(spec.environment)
        answer = self._json("POST", "/v1/jobs", body)
        return Submission(jobid=str(answer["jobid"]), existed=bool(answer["existed"]))

    def _job(self, ref: JobRef) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._json("GET", job_path(ref))
        except NotFound:
            return None
        return found

    def runstatus(self, ref: JobRef) -> JobStatus | None:
        job = self._job(ref)
        return None if job is None or job["state"] not in ("queued", "running") else _status(job)

    def exitstatus(self, ref: JobRef, *, collect: bool = True) -> ExitStatus:
        if collect:
            raise BadRequest("--collect is not available through --url: the server collects nothing for /v1.")
        job = self._job(ref)
        if job is None:
            return ExitStatus(ref, JobState.UNKNOWN, detail="UNKNOWN")
        if job["state"] in ("queued", "running"):
            raise ClusterError(f"Job {ref.jobid} has not finished yet ({job['state']}); ask again later.")
        try:
            output = self.tail(ref, 10_000)
        except NotFound:
            output = ""
        return ExitStatus(
            ref,
            JobState(job["state"]),
            job["elapsed"],
            output,
            job.get("scheduler_state") or "",
            owner=job.get("owner"),
            exit_code=job.get("exit_code"),
        )

    def terminate(self, ref: JobRef, force: bool = False) -> None:
        self._call("DELETE", job_path(ref) + ("?force=true" if force else ""))

    def release(self, ref: JobRef) -> None:
        self._call("POST", job_path(ref) + "/release")

    def hold(self, ref: JobRef) -> None:
        self._call("POST", job_path(ref) + "/hold")

    def tail(self, ref: JobRef, lines: int = 100) -> str:
        return self._call("GET", f"{job_path(ref)}/output?lines={int(lines)}")[1].decode("utf-8", "replace")

    def events(self, ref: JobRef) -> str:
        job = self._job(ref)
        if job is None:
            return f"Job {ref.jobid} ({ref.name}) is unknown to this downstream."
        return " ".join(f"{key}={_shown(value)}" for key, value in job.items())

    def jobs(self) -> Sequence[JobStatus]:
        found: list[JobStatus] = []
        cursor: str | None = None
        while True:
            query = "?limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            page = self._json("GET", "/v1/jobs" + query)
            found += [_status(job) for job in page["jobs"]]
            cursor = page.get("next")
            if not cursor:
                return found

    def close(self) -> None:
        """Nothing to release: each call is one request."""


def _status(job: dict[str, Any]) -> JobStatus:
    ref = JobRef(job["name"], int(job["number"]), str(job["jobid"]))
    return JobStatus(
        ref,
        JobState(job["state"]),
        tuple(job["nodes"]),
        job["elapsed"],
        job.get("owner"),
        job.get("scheduler_state") or "",
        job.get("reason") or "",
    )


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _problem(status: int, raw: bytes) -> Exception:
    try:
        detail = str(json.loads(raw).get("detail") or "")
    except (ValueError, AttributeError):
        detail = ""
    detail = detail or f"the server answered {status}"
    if status == 404:
        return NotFound(detail)
    if status >= 500:
        return ClusterError(detail, transient=status == 503)
    return BadRequest(detail)
