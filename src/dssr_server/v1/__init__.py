"""The RESTful ``/v1`` API beside the legacy one: same server, same :class:`~dssr_core.Downstream`.

Resources and JSON bodies, status codes that mean what they say, RFC 9457
problem details for every error (mapped in :mod:`dssr_server.errors`), a
bearer token naming the caller (:mod:`.access`).  Each route is one
Downstream call or two (a job's state, then the action); the wire shapes are
in :mod:`.shapes`, output following in :mod:`.follow`.  Described by
``v1_openapi.json`` (package data), served at ``/v1/openapi.json``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable
from urllib.parse import quote

from flask import Blueprint, Response, g, jsonify, request

from dssr_core import (
    BadRequest,
    Conflict,
    Downstream,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    NotFound,
    Unprocessable,
    shown,
)
from dssr_core._validate import parse_int

from . import shapes
from .access import Access, Caller
from .follow import Followers
from .settings import V1Settings

PREFIX = "/v1"
#: the blueprint's name: its endpoints are ``v1.<route>``
NAME = "v1"
#: endpoints answered without a token
OPEN = frozenset({"v1.openapi"})
MAX_PAGE = 1000
_STATES = {state.value: state for state in JobState}


#: (HTTP method, rule, the :class:`V1Api` method that answers it; its endpoint is ``v1.<method>``)
ROUTES = (
    ("GET", "/openapi.json", "openapi"),
    ("POST", "/jobs", "submit"),
    ("GET", "/jobs", "jobs"),
    ("GET", "/jobs/<job>", "job_state"),
    ("DELETE", "/jobs/<job>", "terminate"),
    ("POST", "/jobs/<job>/hold", "hold"),
    ("POST", "/jobs/<job>/release", "release"),
    ("GET", "/jobs/<job>/output", "output"),
    ("GET", "/cluster", "cluster"),
)


def register(downstream: Downstream, settings: V1Settings, shared: Callable[[str], bool] | None) -> Blueprint:
    """The ``/v1`` blueprint on ``downstream`` (:data:`ROUTES`); ``shared`` checks the legacy API's token
    (None: none is set)."""
    api = V1Api(downstream, settings, shared)
    bp = Blueprint(NAME, __name__, url_prefix=PREFIX)
    bp.before_request(api.identify)
    for method, rule, name in ROUTES:
        bp.add_url_rule(rule, endpoint=name, view_func=getattr(api, name), methods=[method])
    return bp


class V1Api:
    """The ``/v1`` answers: one Downstream call or two each, as the caller the bearer token names."""

    def __init__(self, downstream: Downstream, settings: V1Settings, shared: Callable[[str], bool] | None) -> None:
        self.downstream = downstream
        self.access = Access(downstream, shared, settings.admin_claim)
        self.followers = Followers(downstream, settings.max_followers, settings.follow_interval)
        self.document = resources.files("dssr_server").joinpath("v1_openapi.json").read_bytes()

    def identify(self) -> None:
        if request.endpoint not in OPEN:
            g.caller = self.access.caller(request.headers.get("Authorization", ""))

    @staticmethod
    def caller() -> Caller:
        found: Caller = g.caller
        return found

    def visible(self, ref: JobRef) -> dict[str, Any]:
        """The job as the caller may see it (its state now, or how it ended); NotFound otherwise."""
        status = self.downstream.runstatus(ref)
        if status is not None:
            if self.caller().may_see(status.owner):
                return shapes.live_job(status)
            raise _unknown(ref)
        try:
            end = self.downstream.exitstatus(ref, collect=False)
        except BadRequest:
            raise _unknown(ref) from None  # the id is another job's
        if end.state is JobState.UNKNOWN or not self.caller().may_see(end.owner):
            raise _unknown(ref)
        return shapes.ended_job(end)

    def openapi(self) -> Response:
        return Response(self.document, mimetype="application/json")

    def submit(self) -> tuple[Response, int, dict[str, str]]:
        body = request.get_json(silent=True, force=True) if request.content_length else None
        if body is None:
            raise Unprocessable("The request body must be a JSON object (a job spec).")
        spec = shapes.parse_spec(body)
        who = self.caller()
        if who.identity is not None:
            spec = spec.replace(identity=who.identity)
        digest = spec.digest()
        # a job of the name with another spec is refused before submit could act on it (release its hold)
        for job in self.downstream.jobs():  # the shared snapshot
            if job.ref.name == spec.name and who.may_see(job.owner):
                _same_spec(spec.name, job, digest)
        submission = self.downstream.submit(spec)
        ref = JobRef(spec.name, spec.number, submission.jobid)
        if submission.existed:  # a job that appeared meanwhile
            status = self.downstream.runstatus(ref)
            if status is not None:
                _same_spec(spec.name, status, digest)
        location = f"{PREFIX}/jobs/{quote(shapes.job_id(ref), safe=':+')}"
        return jsonify(shapes.submitted(ref, submission)), 200 if submission.existed else 201, {"Location": location}

    def jobs(self) -> Response:
        args = request.args
        limit = parse_int(args.get("limit", "100"), "limit", 1, MAX_PAGE)
        after = shapes.after_cursor(args["cursor"]) if "cursor" in args else None
        chosen = sorted(self._listed(args.get("state"), args.get("user"), args.get("name", "")), key=shapes.sort_key)
        if after is not None:
            chosen = [job for job in chosen if shapes.sort_key(job) > after]
        page = chosen[:limit]
        cursor = shapes.cursor_of(page[-1]) if len(chosen) > limit else None
        answer = jsonify({"jobs": [shapes.live_job(job) for job in page], "next": cursor})
        if cursor is not None:
            answer.headers["Link"] = f'<{PREFIX}/jobs?{_query(cursor, limit)}>; rel="next"'
        return answer

    def _listed(self, state: str | None, user: str | None, prefix: str) -> list[JobStatus]:
        """The caller's jobs of one snapshot, filtered by state, owner and name prefix."""
        if state is not None and state not in _STATES:
            raise BadRequest(f"state {shown(state)} is not one of {', '.join(_STATES)}.")
        who = self.caller()
        return [
            job
            for job in self.downstream.jobs()  # one snapshot for the whole answer
            if who.may_see(job.owner)
            and (state is None or job.state.value == state)
            and (user is None or job.owner == user)
            and job.ref.name.startswith(prefix)
        ]

    def job_state(self, job: str) -> Response:
        return jsonify(self.visible(shapes.parse_id(job)))

    def terminate(self, job: str) -> Response:
        ref = shapes.parse_id(job)
        self.visible(ref)
        self.downstream.terminate(ref, force=_flag("force"))
        return Response(status=204)

    def hold(self, job: str) -> Response:
        return self._queued_action(job, self.downstream.hold, "hold")

    def release(self, job: str) -> Response:
        return self._queued_action(job, self.downstream.release, "release")

    def _queued_action(self, job: str, action: Callable[[JobRef], None], word: str) -> Response:
        ref = shapes.parse_id(job)
        if self.visible(ref)["state"] != JobState.QUEUED.value:
            raise Conflict(f"Job {shown(job)} is not queued: there is nothing to {word}.")
        try:
            action(ref)
        except NotFound:
            raise Conflict(f"Job {shown(job)} is no longer queued: there is nothing to {word}.") from None
        return Response(status=204)

    def output(self, job: str) -> Response:
        ref = shapes.parse_id(job)
        self.visible(ref)
        raw = request.args.get("lines")
        lines = None if raw is None else parse_int(raw, "lines", 1, 10_000)
        if _flag("follow"):
            stream = self.followers.follow(ref, lines)
            return Response(stream, mimetype="text/plain", headers={"Cache-Control": "no-cache"})
        return Response(self.downstream.tail(ref, lines or 100), mimetype="text/plain")

    def cluster(self) -> Response:
        return jsonify(shapes.cluster_answer(self.downstream.cluster()))


def _same_spec(name: str, job: JobStatus, digest: str) -> None:
    """Conflict naming what differs when ``job`` (of that name) was submitted with another spec than ``digest``'s;
    nothing when the connector keeps no digest of the job (it cannot tell)."""
    differs = JobSpec.digest_differences(job.spec_digest, digest)
    if differs:
        raise Conflict(
            f"A job named {shown(name)} exists ({shown(shapes.job_id(job.ref))}) with another spec: "
            f"{', '.join(differs)} {'differs' if len(differs) == 1 else 'differ'}.",
            fields=differs,
        )


def _unknown(ref: JobRef) -> NotFound:
    return NotFound(f"No job {shown(shapes.job_id(ref))} is known to this downstream.")


def _flag(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false, not {shown(value)}.")
    return value in ("true", "1")


def _query(cursor: str, limit: int) -> str:
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "limit")]
    kept += [("limit", str(limit)), ("cursor", cursor)]
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in kept)
