"""The Flask application: routes, upstream authentication and the one error mapping."""

from __future__ import annotations

import hmac
import logging
from importlib import resources
from typing import Callable

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dssr_core import ConfigError, Downstream, Settings, metrics
from dssr_core._validate import bounded

from . import v1
from .errors import PROBLEM, allow_header, error_answer, problem_answer
from .fastpath import RunstatusFastPath
from .legacy import register
from .metrics import PrometheusRecorder
from .settings import ServerSettings
from .tracking import RequestTracking, RouteLabels
from .v1.settings import V1Settings

log = logging.getLogger(__name__)

#: the variable holding the optional shared secret the upstream must present
AUTH_TOKEN_VARIABLE = "JARVICE_DSSR_AUTH_TOKEN"
#: endpoints answered without the shared secret (the probes)
OPEN_ENDPOINTS = frozenset({"legacy.live", "ready", "openapi"})
#: the largest request body accepted (bytes)
MAX_BODY = 16 * 1024 * 1024


def create_app(downstream: Downstream, settings: Settings | None = None) -> Flask:
    """A Flask app serving every legacy endpoint on ``downstream``.

    When ``JARVICE_DSSR_AUTH_TOKEN`` is set (in ``settings``, the environment
    by default), every endpoint but ``/live`` and ``/ready`` requires
    ``Authorization: Bearer <token>``.  ``/ready`` and ``/metrics`` are served
    beside the legacy endpoints; the app's Prometheus recorder becomes the
    process's :func:`dssr_core.metrics.recorder`.  ``/submit`` reads the
    template from ``hpc_script[JARVICE_UPSTREAM_SCRIPT_KEY]``, by default the
    executor's name as ``settings`` give it (``apptainer`` for ``apptainer``).
    ``/v1`` (:mod:`.v1`) is served beside them, with its own authorization.
    A plain ``POST /runstatus`` is answered by :mod:`.fastpath` before Flask
    sees it, as Flask's route would; every request is tracked by
    :mod:`.tracking` (request id, metrics, access line).
    """
    settings = settings if settings is not None else Settings()
    server = ServerSettings.from_settings(settings)
    app = Flask("dssr_server")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # the default provider has it; Flask types app.json as the base provider
    # templates are small, but the default form-field limit (500 kB) is too tight for a few
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    recorder = PrometheusRecorder()
    metrics.install(recorder)
    app.register_blueprint(register(downstream, server.script_key or server.executor))
    _install_operations(app, downstream, recorder, server.ready_max_age)
    _install_openapi(app)
    accepted = bearer_check(upstream_token(settings))
    app.register_blueprint(v1.register(downstream, V1Settings.from_settings(settings), accepted))
    _install_auth(app, accepted)
    _install_error_handlers(app)
    # a plain /runstatus is answered before Flask sees it; every request, either way, is tracked
    app.wsgi_app = RunstatusFastPath(app.wsgi_app, downstream, accepted)  # type: ignore[method-assign]  # WSGI middleware goes in as Flask documents
    app.wsgi_app = RequestTracking(  # type: ignore[method-assign]  # WSGI middleware goes in as Flask documents
        app.wsgi_app, recorder, RouteLabels(app.url_map), access_lines=server.log_format == "json"
    )
    return app


def _install_openapi(app: Flask) -> None:
    """``/openapi.json``: the written OpenAPI 3 description of the legacy API (package data), open like ``/live``."""
    document = resources.files("dssr_server").joinpath("openapi.json").read_bytes()

    @app.get("/openapi.json", endpoint="openapi")
    def openapi() -> Response:
        return Response(document, mimetype="application/json")


def _install_operations(app: Flask, downstream: Downstream, recorder: PrometheusRecorder, max_age: float) -> None:
    """``/ready`` (from the last contact with the cluster, never a new one) and ``/metrics``."""

    @app.get("/ready", endpoint="ready")
    def ready() -> tuple[Response, int]:
        ok, reason = downstream.readiness(max_age)
        return jsonify(reason), 200 if ok else 503

    @app.get("/metrics", endpoint="metrics")
    def scrape() -> Response:
        body = recorder.exposition(downstream.connector.last_contact())
        return Response(body, mimetype=None, content_type=recorder.content_type)


def _where() -> str:
    """The request's method and path for an answer or a log line, cut to a bounded length."""
    return f"{bounded(request.method, 16)} {bounded(request.path)}"


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def upstream_token(settings: Settings) -> str | None:
    """``JARVICE_DSSR_AUTH_TOKEN`` without the white space around it (a trailing newline of the file or the
    secret it came from: no client sends one); None when unset.  A :class:`ConfigError` (never showing the
    value) when it is blank or holds a space, a control character or a character beyond ASCII, which no
    client sends as one ``Bearer`` token (headers are ASCII): every request would be refused."""
    value = settings.raw(AUTH_TOKEN_VARIABLE)
    if value is None:
        return None
    token = value.strip()
    if not token:
        raise ConfigError(
            f"{AUTH_TOKEN_VARIABLE} is blank: set it to a long random string (e.g. openssl rand -hex 32), or unset it."
        )
    if any(ch.isspace() or not ch.isprintable() or not ch.isascii() for ch in token):
        raise ConfigError(
            f"{AUTH_TOKEN_VARIABLE} holds a space, a control character or a character beyond ASCII, which no "
            "client sends in 'Authorization: Bearer <token>': use ASCII letters, digits and punctuation "
            "(e.g. openssl rand -hex 32)."
        )
    return token


def bearer_check(token: str | None) -> Callable[[str], bool] | None:
    """Whether an ``Authorization`` header value carries ``Bearer <token>`` (None: no token is required)."""
    if not token:
        return None
    expected = token.encode("utf-8")

    def accepted(header: str) -> bool:
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode("utf-8"), expected)

    return accepted


def _install_auth(app: Flask, accepted: Callable[[str], bool] | None) -> None:
    if accepted is None:
        return

    @app.before_request
    def require_token() -> tuple[Response, int] | None:
        if request.endpoint in OPEN_ENDPOINTS or request.blueprint == v1.NAME:
            return None  # /v1 identifies its callers itself (the shared token is one of its ways)
        if not accepted(request.headers.get("Authorization", "")):
            metrics.recorder().token_refused("upstream")
            log.warning("refused %s from %s: missing or wrong upstream token", _where(), request.remote_addr)
            return _error("This downstream requires the upstream's bearer token (Authorization: Bearer ...).", 401)
        return None


def _install_error_handlers(app: Flask) -> None:
    """Errors on ``/v1`` are problem details, elsewhere the legacy ``{"error": ...}``; both from :mod:`.errors`."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        if _on_v1():
            return _problem(exc)
        status = exc.code or 500
        answer, status = _error(f"{exc.name}: {_where()}", status)
        answer.headers.update(allow_header(exc))
        return answer, status

    @app.errorhandler(Exception)
    def raised(exc: Exception) -> tuple[Response, int]:
        if _on_v1():
            return _problem(exc)
        return _error(*error_answer(exc, _where()))


def _on_v1() -> bool:
    return request.path == v1.PREFIX or request.path.startswith(v1.PREFIX + "/")


def _problem(exc: Exception) -> tuple[Response, int]:
    status, body, headers = problem_answer(exc, _where())
    answer = jsonify(body)
    answer.mimetype = PROBLEM
    answer.headers.update(headers)
    return answer, status
