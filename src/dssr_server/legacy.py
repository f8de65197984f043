"""The legacy endpoints (LEGACY_API.md), wire-exact: one Downstream call each, the wire format in :mod:`.wire`."""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from flask import Blueprint, Response, jsonify, request

from dssr_core import BadRequest, Downstream, JobRef, NotFound, parse_int, shown

from . import wire

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
#: ``/request/<name>/<number>/<jobid>/<method>`` methods answered 200 with an empty body
_EMPTY_METHODS = frozenset({"ping", "connect"})


def form_args() -> dict[str, Any]:
    """The form field ``args`` as a JSON object; anything else is a :class:`BadRequest`."""
    raw = request.form.get("args")
    if raw is None:
        raise BadRequest("The request has no form field 'args': send args=<JSON object>, form-encoded.")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The form field 'args' is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest(f"The form field 'args' must be a JSON object, not {_json_kind(value)}.")
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and value == 1)


def _qs_first(qs: Mapping[str, Any], key: str) -> str | None:
    """The first value of ``qs[key]`` (a parsed query string: lists of strings)."""
    value = qs.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"qs.{key} must be a list of strings, not {shown(value)}.")
    return str(value)


def _query(args: Mapping[str, Any]) -> Mapping[str, Any]:
    qs = args.get("qs", {})
    if qs is None:
        return {}
    if not isinstance(qs, dict):
        raise BadRequest("args.qs must be an object of lists, like a parsed query string.")
    return qs


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

    @bp.post("/runstatus")
    def runstatus() -> Response:
        ref = wire.job_ref(form_args())
        return jsonify(wire.runstatus_answer(ref, downstream.runstatus(ref)))

    @bp.post("/exitstatus")
    def exitstatus() -> Response:
        return jsonify(wire.exitstatus_answer(downstream.exitstatus(wire.job_ref(form_args()))))

    @bp.post("/terminate")
    def terminate() -> Response:
        args = form_args()
        downstream.terminate(wire.job_ref(args), force=_truthy(args.get("force")))
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
        qs = _query(form_args())
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
    folder = _qs_first(qs, "path") or "/"
    details = (_qs_first(qs, "details") or "").lower() == "true"
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
        return _text(downstream.tail(ref, _tail_lines(qs)))
    if method == "screenshot":
        raise NotFound("No screenshots from batch jobs.")
    return _text("")


def _tail_lines(qs: Mapping[str, Any]) -> int:
    raw = _qs_first(qs, "lines")
    return 100 if raw is None else parse_int(raw, "qs.lines", 1)
