"""Each request's id, latency and status: one WSGI layer around the whole app.

A WSGI layer rather than Flask's ``before_request``/``after_request`` hooks, so
that every answer is counted the same way (those of Flask's routes and those of
:mod:`.fastpath`) and so that the accounting costs a few microseconds instead of
the hooks' context-local lookups on every request the upstream polls.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

from dssr_core._validate import bounded

from .logs import REQUEST_ID, request_id
from .metrics import PrometheusRecorder

access_log = logging.getLogger("dssr_server.access")

#: the route label of a request that matched no route (unknown path, or a method the route does not take)
UNMATCHED = "unmatched"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RouteLabels:
    """A request's route as its metrics label: the rule it matched (``/request/<path:path>``), or ``unmatched``.

    Rules without arguments are looked up by (method, path); only the others
    ask werkzeug's router, as Flask itself would.
    """

    def __init__(self, url_map: Map) -> None:
        self.url_map = url_map
        self.plain = {
            (method, rule.rule): rule.rule
            for rule in url_map.iter_rules()
            if not rule.arguments
            for method in rule.methods or ()
        }

    def __call__(self, environ: dict[str, Any]) -> str:
        label = self.plain.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if label is not None:
            return label
        try:
            rule, _ = self.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:
            return UNMATCHED
        return str(rule.rule)


class RequestTracking:
    """WSGI middleware: the request id (``X-Request-Id``, and every log record made meanwhile), metrics, access lines.

    The id is the caller's ``X-Request-Id`` when it is a plain token, else a
    new one; it is returned in the answer's ``X-Request-Id`` header.  Every
    answer is counted in ``recorder`` by route label and status with its
    latency; with ``access_lines`` each one is also logged on
    ``dssr_server.access`` with its method, path, status, duration and peer.
    """

    def __init__(self, app: WSGIApp, recorder: PrometheusRecorder, labels: RouteLabels, *, access_lines: bool) -> None:
        self.app = app
        self.recorder = recorder
        self.labels = labels
        self.access_lines = access_lines

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = REQUEST_ID.set(rid)
        statuses: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            headers.append(("X-Request-Id", rid))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            code = int(statuses[-1][:3]) if statuses else 500
            seconds = time.perf_counter() - started
            self.recorder.request(self.labels(environ), code, seconds)
            if self.access_lines:
                self._access_line(environ, code, seconds)
            REQUEST_ID.reset(token)

    @staticmethod
    def _access_line(environ: dict[str, Any], code: int, seconds: float) -> None:
        method = bounded(environ.get("REQUEST_METHOD", ""), 16)
        # WSGI gives the path as latin-1 text of its bytes; show it as the UTF-8 the client sent
        path = bounded(environ.get("PATH_INFO", "").encode("latin-1", "replace").decode("utf-8", "replace"))
        access_log.info(
            "%s %s %s",
            method,
            path,
            code,
            extra={
                "method": method,
                "path": path,
                "status": code,
                "duration_ms": round(seconds * 1000, 1),
                "remote": environ.get("REMOTE_ADDR"),
            },
        )
