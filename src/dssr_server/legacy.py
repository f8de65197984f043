"""The legacy endpoints (LEGACY_API.md), wire-exact: one Downstream call each, the wire format in :mod:`.wire`."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Blueprint, Response, jsonify, request

from dssr_core import BadRequest, Downstream, JobRef, NotFound, shown

from . import wire

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
#: ``/request/<name>/<number>/<jobid>/<method>`` methods answered 200 with an empty body
_EMPTY_METHODS = frozenset({"ping", "connect"})


#: the bodies Flask reads form fields from
_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def form_args() -> dict[str, Any]:
    """The request's form field ``args`` (:func:`.wire.args_object`); a body that is no form is named by
    its content type (a client sending JSON learns why its ``args`` was not seen)."""
    raw = request.form.get("args")
    if raw is None and request.mimetype not in _FORMS:
        kind = f"of type {shown(request.mimetype)}" if request.mimetype else "without a Content-Type"
        raise BadRequest(
            f"The request body is {kind}, not a form: send args=<JSON object> as application/x-www-form-urlencoded."
        )
    return wire.args_object(raw)


def runstatus(downstream: Downstream, args: Mapping[str, Any]) -> list[Any]:
    """The answer of ``/runstatus`` to ``args`` (served by Flask's route and by :mod:`.fastpath`)."""
    ref = wire.job_ref(args)
    return wire.runstatus_answer(ref, downstream.runstatus(ref))


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


#: (HTTP method, rule, the :class:`LegacyApi` method that answers it): LEGACY_API.md's endpoints
ROUTES = (
    ("GET", "/live", "live"),
    ("GET", "/gc", "gc"),
    ("POST", "/submit", "submit"),
    ("GET", "/nodes", "nodes"),
    ("GET", "/running", "running"),
    ("GET", "/queued", "queued"),
    ("POST", "/runstatus", "runstatus"),
    ("POST", "/exitstatus", "exitstatus"),
    ("POST", "/terminate", "terminate"),
    ("POST", "/online", "online"),
    ("POST", "/release", "release"),
    ("POST", "/events", "events"),
    ("POST", "/request/<path:path>", "job_request"),
)


def register(downstream: Downstream, script_key: str) -> Blueprint:
    """The blueprint of every legacy endpoint (:data:`ROUTES`), bound to ``downstream``; ``/submit`` reads
    ``hpc_script[script_key]``.  Each endpoint is named after its method (``legacy.live``...)."""
    api = LegacyApi(downstream, script_key)
    bp = Blueprint("legacy", __name__)
    for method, rule, name in ROUTES:
        bp.add_url_rule(rule, endpoint=name, view_func=getattr(api, name), methods=[method])
    return bp


class LegacyApi:
    """The legacy endpoints' answers: one :class:`~dssr_core.Downstream` call each."""

    def __init__(self, downstream: Downstream, script_key: str) -> None:
        self.downstream, self.script_key = downstream, script_key

    def live(self) -> Response:
        return jsonify({"status": "OK"})

    def gc(self) -> tuple[Response, int]:
        try:
            healthy = self.downstream.healthy()
        except Exception:
            log.exception("cluster health check raised")
            healthy = False
        return (jsonify({"status": "OK"}), 200) if healthy else (jsonify({"status": "BAD"}), 500)

    def submit(self) -> Response:
        args = form_args()
        spec = wire.parse_submission(args, self.script_key)
        if self.downstream.verifier is not None:
            spec = spec.replace(identity=self.downstream.verifier.verify_token(args.get("bearer")))
        submission = self.downstream.submit(spec)
        return jsonify([submission.jobid, submission.script])

    def nodes(self) -> Response:
        return _text("true")

    def running(self) -> Response:
        return jsonify(wire.job_list(self.downstream.running()))

    def queued(self) -> Response:
        return jsonify(wire.job_list(self.downstream.queued()))

    def runstatus(self) -> Response:
        return jsonify(runstatus(self.downstream, form_args()))

    def exitstatus(self) -> Response:
        return jsonify(wire.exitstatus_answer(self.downstream.exitstatus(wire.job_ref(form_args()))))

    def terminate(self) -> Response:
        args = form_args()
        self.downstream.terminate(wire.job_ref(args), force=wire.truthy(args.get("force")))
        return jsonify(True)

    def online(self) -> Response:
        return jsonify(True)

    def release(self) -> Response:
        self.downstream.release(wire.job_ref(form_args()))
        return jsonify(True)

    def events(self) -> Response:
        return jsonify(self.downstream.events(wire.job_ref(form_args())))

    def job_request(self, path: str) -> Response | tuple[Response, int]:
        qs = wire.query(form_args())
        parts = path.strip("/").split("/")
        if parts == ["pvcls"]:
            return _pvcls(self.downstream, qs)
        if len(parts) != 4:
            raise BadRequest(f"Unknown request path {shown(path)}: use pvcls or <name>/<number>/<jobid>/<method>.")
        name, number, jobid, method = parts
        ref = wire.job_ref({"name": name, "number": number, "jobid": jobid})
        return _job_method(self.downstream, ref, method, qs)


def _pvcls(downstream: Downstream, qs: Mapping[str, Any]) -> Response:
    folder, details = wire.pvcls_request(qs)
    entries = downstream.list_files(folder, details)
    lines = [wire.pvcls_line(entry, details) for entry in entries]
    return _text("".join(line + "\n" for line in lines))


def _job_method(downstream: Downstream, ref: JobRef, method: str, qs: Mapping[str, Any]) -> Response:
    if method in _EMPTY_METHODS:
        return _text("")
    if method in ("shutdown", "abort"):
        downstream.terminate(ref, force=method == "abort")
        return _text("")
    if method == "info":
        return jsonify(wire.info_answer(downstream.info(ref)))
    if method == "tail":
        return _text(downstream.tail(ref, wire.tail_lines(qs)))
    if method == "screenshot":
        raise NotFound("No screenshots from batch jobs.")
    return _text("")
