"""``POST /runstatus`` without Flask's request machinery: the request the upstream sends per job per poll cycle.

At a site's size nearly every request is a ``/runstatus``: one per queued or
running job on every cycle.  Through Flask, its request context, router, form
parser and response object cost about twice what building the answer does
(``benchmarks/http_floor.py``).  So a plain ``/runstatus`` (a ``POST`` with a
``Content-Length``, a form-encoded UTF-8 body of at most
:data:`MAX_PLAIN_BODY`, and the upstream's token when one is required) is
answered here, from the same functions the Flask route calls:
:func:`.legacy.runstatus` and :func:`.errors.error_answer`.

Every other request, and any ``/runstatus`` that is not plain, goes on to Flask
untouched, to be answered or refused as any other request is.
``tests/server/test_fastpath.py`` holds both paths to the same bytes.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from werkzeug.http import HTTP_STATUS_CODES

from dssr_core import Downstream

from . import legacy, wire
from .errors import error_answer
from .tracking import WSGIApp

PATH = "/runstatus"
WHERE = f"POST {PATH}"
#: the largest body answered here (a /runstatus is about 100 bytes); larger ones go to Flask
MAX_PLAIN_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"


class RunstatusFastPath:
    """WSGI middleware answering a plain ``POST /runstatus`` on ``downstream``; everything else goes to ``app``.

    ``accepted``, when a token is required, tells whether an
    ``Authorization`` header value carries it; a request without it goes to
    ``app``, which refuses it.
    """

    def __init__(self, app: WSGIApp, downstream: Downstream, accepted: Callable[[str], bool] | None) -> None:
        self.app = app
        self.downstream = downstream
        self.accepted = accepted

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST" or not self._plain(environ):
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        values = _args_values(raw)
        if values is None:
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        try:
            answer: object = legacy.runstatus(self.downstream, wire.args_object(values[0] if values else None))
            status = 200
        except Exception as exc:  # noqa: BLE001 - answered by the one mapping, as Flask answers any error
            message, status = error_answer(exc, WHERE)
            answer = {"error": message}
        body = (json.dumps(answer, separators=(",", ":")) + "\n").encode("ascii")
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _plain(self, environ: dict[str, Any]) -> bool:
        """Whether the request's headers are those of a plain ``/runstatus`` (its body is not read)."""
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isascii() and length.isdigit() and int(length) <= MAX_PLAIN_BODY):
            return False
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM:
            return False
        return self.accepted is None or self.accepted(environ.get("HTTP_AUTHORIZATION", ""))


def _args_values(raw: bytes) -> list[str] | None:
    """The form's ``args`` values, in order; None when the body is not plain UTF-8 form text."""
    try:
        fields = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except ValueError:  # UnicodeDecodeError included
        return None
    return [value for key, value in fields if key == "args"]
