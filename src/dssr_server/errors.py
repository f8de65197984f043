"""The one mapping from an exception to the HTTP answer and its log line.

The legacy API answers ``{"error": "..."}`` (:func:`error_answer`); ``/v1``
answers RFC 9457 problem details (:func:`problem_answer`), built on the same
mapping: the status comes from the error's class in :mod:`dssr_core.errors`,
the wording from the error itself, and each error is logged here once.
Flask's error handlers (:mod:`.app`) and :mod:`.fastpath` answer through these
functions, so an error is worded, logged and given its status in one place
whichever path served the request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed

from dssr_core import Busy, ClusterError, Conflict, DssrError, Unauthorized, Unprocessable

log = logging.getLogger("dssr_server.app")

#: the media type of a problem-details answer (RFC 9457)
PROBLEM = "application/problem+json"
#: seconds a client waits before asking again after a 503
RETRY_AFTER = 5
#: problem ``type`` URIs: one per kind of error
TYPE_PREFIX = "urn:jarvice-dssr:problem:"
#: seconds between two log lines of a server at a bound it keeps (:class:`~dssr_core.Busy`)
BUSY_LOG_INTERVAL = 60.0


class _Throttle:
    """True at most once per ``interval`` (thread-safe)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lock = threading.Lock()
        self.last = -interval
        self.skipped = 0

    def take(self) -> int | None:
        """None inside the interval; else how many were skipped since the last one let through."""
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.interval:
                self.skipped += 1
                return None
            self.last, skipped, self.skipped = now, self.skipped, 0
            return skipped


_busy = _Throttle(BUSY_LOG_INTERVAL)


def error_answer(exc: Exception, where: str) -> tuple[str, int]:
    """The message and HTTP status answering ``exc`` raised while serving ``where`` ("METHOD /path"), logged.

    A :class:`~dssr_core.DssrError` answers its own message and status (a
    transient cluster error is logged as such: the upstream asks again); any
    other exception is a bug, logged with its traceback and answered
    ``internal error`` without a word of it.
    """
    if isinstance(exc, DssrError):
        if isinstance(exc, Busy):
            # a bound the server keeps on purpose, not a failure: said once per interval, not per request
            skipped = _busy.take()
            if skipped:
                log.warning("%s refused: %s (and %d more in the last %.0f s)", where, exc, skipped, _busy.interval)
            elif skipped is not None:
                log.warning("%s refused: %s", where, exc)
        elif isinstance(exc, ClusterError) and exc.transient:
            log.info("%s: %s (the upstream will ask again)", where, exc)
        elif exc.http_status >= 500:
            log.error("%s failed: %s", where, exc)
        else:
            log.info("%s refused: %s", where, exc)
        return exc.message, exc.http_status
    log.error("%s: unexpected error", where, exc_info=exc)
    return "internal error", 500


#: (kind, title) of each error class, most specific first
_KINDS: tuple[tuple[type[DssrError], str, str], ...] = (
    (Unprocessable, "invalid", "Invalid request content"),
    (Unauthorized, "unauthorized", "Authentication required"),
    (Busy, "busy", "Server busy"),
)


def problem_answer(exc: Exception, where: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, problem object, extra headers) answering ``exc`` on ``/v1``, logged as :func:`error_answer` logs.

    A cluster that does not answer (a transient :class:`~dssr_core.ClusterError`)
    is ``503`` with ``Retry-After``; one that answers with an error ``502``;
    every other error keeps its class's status.
    """
    headers: dict[str, str] = {}
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        detail = f"{exc.name}: {where}"
        kind, title = "http", exc.name
        headers.update(allow_header(exc))
    else:
        detail, status = error_answer(exc, where)
        kind, title = _kind(exc, status)
        if isinstance(exc, ClusterError):
            status = 503 if exc.transient else 502
            kind, title = (
                ("cluster-unavailable", "Cluster unavailable") if exc.transient else ("cluster", "Cluster error")
            )
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body: dict[str, Any] = {"type": TYPE_PREFIX + kind, "title": title, "status": status, "detail": detail}
    if isinstance(exc, Unprocessable) and exc.field:
        body["field"] = exc.field
    if isinstance(exc, Conflict) and exc.fields:
        body["fields"] = list(exc.fields)
    return status, body, headers


def allow_header(exc: HTTPException) -> dict[str, str]:
    """``Allow`` naming the methods of the resource, for a ``405`` (RFC 9110 requires it)."""
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        return {"Allow": ", ".join(sorted(exc.valid_methods))}
    return {}


def _kind(exc: Exception, status: int) -> tuple[str, str]:
    for cls, kind, title in _KINDS:
        if isinstance(exc, cls):
            return kind, title
    return _BY_STATUS.get(status, ("internal", "Internal error"))


_BY_STATUS = {
    400: ("bad-request", "Bad request"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    409: ("conflict", "Conflict"),
    501: ("not-supported", "Not implemented"),
}
