"""The Flask application: routes, upstream authentication and the one error mapping."""

from __future__ import annotations

import hmac
import logging
import time
from importlib import resources

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from dssr_core import ClusterError, Downstream, DssrError, Settings, bounded, metrics

from .legacy import register
from .logs import REQUEST_ID, request_id
from .metrics import PrometheusRecorder
from .settings import ServerSettings

log = logging.getLogger(__name__)
access_log = logging.getLogger("dssr_server.access")

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
    """
    settings = settings if settings is not None else Settings()
    server = ServerSettings.from_settings(settings)
    app = Flask("dssr_server")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # templates are small, but the default form-field limit (500 kB) is too tight for a few
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    recorder = PrometheusRecorder()
    metrics.install(recorder)
    _install_request_tracking(app, recorder, access_lines=server.log_format == "json")
    app.register_blueprint(register(downstream, server.script_key or server.executor))
    _install_operations(app, downstream, recorder, server.ready_max_age)
    _install_openapi(app)
    _install_auth(app, settings.str(AUTH_TOKEN_VARIABLE))
    _install_error_handlers(app)
    return app


def _install_openapi(app: Flask) -> None:
    """``/openapi.json``: the written OpenAPI 3 description of the legacy API (package data), open like ``/live``."""
    document = resources.files("dssr_server").joinpath("openapi.json").read_bytes()

    @app.get("/openapi.json", endpoint="openapi")
    def openapi() -> Response:
        return Response(document, mimetype="application/json")


def _install_request_tracking(app: Flask, recorder: PrometheusRecorder, *, access_lines: bool) -> None:
    """Each request: an id (logs and the X-Request-Id header), its latency and status in metrics."""

    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-Id"))
        g.id_token = REQUEST_ID.set(g.request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        recorder.request(endpoint, response.status_code, seconds)
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        if access_lines:
            method, path = bounded(request.method, 16), bounded(request.path)
            access_log.info(
                "%s %s %s",
                method,
                path,
                response.status_code,
                extra={
                    "method": method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                    "remote": request.remote_addr,
                },
            )
        return response

    @app.teardown_request
    def forget(exc: BaseException | None) -> None:
        token = g.pop("id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)


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


def _install_auth(app: Flask, token: str | None) -> None:
    if not token:
        return
    expected = token.encode("utf-8")

    @app.before_request
    def require_token() -> tuple[Response, int] | None:
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode("utf-8"), expected):
            metrics.recorder().token_refused("upstream")
            log.warning("refused %s from %s: missing or wrong upstream token", _where(), request.remote_addr)
            return _error("This downstream requires the upstream's bearer token (Authorization: Bearer ...).", 401)
        return None


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(DssrError)
    def dssr_error(exc: DssrError) -> tuple[Response, int]:
        if isinstance(exc, ClusterError) and exc.transient:
            log.info("%s: %s (the upstream will ask again)", _where(), exc)
        elif exc.http_status >= 500:
            log.error("%s failed: %s", _where(), exc)
        else:
            log.info("%s refused: %s", _where(), exc)
        return _error(exc.message, exc.http_status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return _error(f"{exc.name}: {_where()}", status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("%s: unexpected error", _where())
        return _error("internal error", 500)
