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


def register(downstream: Downstream, script_key: str) -> Blueprint:
    """The blueprint of every legacy endpoint, bound to ``downstream``; ``/submit`` reads ``hpc_script[script_key]``."""
    bp = Blueprint("legacy", __name__)

    @bp.get("/live")
    def live() -> Response:
        return jsonify({"status": "OK"})

    @bp.get("/gc")
    def gc() -> tuple[Response, int]:
        try:
            healthy = downstream.healthy()
        except Exception:
            log.exception("cluster health check raised")
            healthy = False
        return (jsonify({"status": "OK"}), 200) if healthy else (jsonify({"status": "BAD"}), 500)

    @bp.post("/submit")
    def submit() -> Response:
        args = form_args()
        spec = wire.parse_submission(args, script_key)
        if downstream.verifier is not None:
            spec = spec.replace(identity=downstream.verifier.verify_token(args.get("bearer")))
        submission = downstream.submit(spec)
        return jsonify([submission.jobid, submission.script])

    @bp.get("/nodes")
    def nodes() -> Response:
        return _text("true")

    @bp.get("/running")
    def running() -> Response:
        return jsonify(wire.job_list(downstream.running()))

    @bp.get("/queued")
    def queued() -> Response:
        return jsonify(wire.job_list(downstream.queued()))

    @bp.post("/runstatus", endpoint="runstatus")
    def runstatus_route() -> Response:
        return jsonify(runstatus(downstream, form_args()))

    @bp.post("/exitstatus")
    def exitstatus() -> Response:
        return jsonify(wire.exitstatus_answer(downstream.exitstatus(wire.job_ref(form_args()))))

    @bp.post("/terminate")
    def terminate() -> Response:
        args = form_args()
        downstream.terminate(wire.job_ref(args), force=wire.truthy(args.get("force")))
        return jsonify(True)

    @bp.post("/online")
    def online() -> Response:
        return jsonify(True)

    @bp.post("/release")
    def release() -> Response:
        downstream.release(wire.job_ref(form_args()))
        return jsonify(True)

    @bp.post("/events")
    def events() -> Response:
        return jsonify(downstream.events(wire.job_ref(form_args())))

    @bp.post("/request/<path:path>")
    def job_request(path: str) -> Response | tuple[Response, int]:
        qs = wire.query(form_args())
        parts = path.strip("/").split("/")
        if parts == ["pvcls"]:
            return _pvcls(downstream, qs)
        if len(parts) != 4:
            raise BadRequest(f"Unknown request path {shown(path)}: use pvcls or <name>/<number>/<jobid>/<method>.")
        name, number, jobid, method = parts
        ref = wire.job_ref({"name": name, "number": number, "jobid": jobid})
        return _job_method(downstream, ref, method, qs)

    return bp


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
