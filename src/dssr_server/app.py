"""The Flask application: routes, upstream authentication and the one error mapping."""

from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dssr_core import ClusterError, Downstream, DssrError, Settings

from .legacy import register

log = logging.getLogger(__name__)

#: the variable holding the optional shared secret the upstream must present
AUTH_TOKEN_VARIABLE = "JARVICE_DSSR_AUTH_TOKEN"
#: endpoints answered without the shared secret (liveness probes)
OPEN_ENDPOINTS = frozenset({"legacy.live"})
#: the largest request body accepted (bytes)
MAX_BODY = 16 * 1024 * 1024


def create_app(downstream: Downstream, settings: Settings | None = None) -> Flask:
    """A Flask app serving every legacy endpoint on ``downstream``.

    When ``JARVICE_DSSR_AUTH_TOKEN`` is set (in ``settings``, the environment
    by default), every endpoint but ``/live`` requires ``Authorization: Bearer <token>``.
    """
    settings = settings if settings is not None else Settings()
    app = Flask("dssr_server")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # templates are small, but the default form-field limit (500 kB) is too tight for a few
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.register_blueprint(register(downstream))
    _install_auth(app, settings.str(AUTH_TOKEN_VARIABLE))
    _install_error_handlers(app)
    return app


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
            log.warning("refused %s %s from %s: missing or wrong upstream token", request.method, request.path, request.remote_addr)
            return _error("This downstream requires the upstream's bearer token (Authorization: Bearer ...).", 401)
        return None


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(DssrError)
    def dssr_error(exc: DssrError) -> tuple[Response, int]:
        if isinstance(exc, ClusterError) and exc.transient:
            log.info("%s %s: %s (the upstream will ask again)", request.method, request.path, exc)
        elif exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
        else:
            log.info("%s %s refused: %s", request.method, request.path, exc)
        return _error(exc.message, exc.http_status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return _error(f"{exc.name}: {request.method} {request.path}", status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("%s %s: unexpected error", request.method, request.path)
        return _error("internal error", 500)
