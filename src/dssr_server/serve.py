"""The waitress server, answering JSON even for the errors waitress raises itself.

waitress refuses some requests before the application sees them (an invalid
``Content-Length``, headers or a body too large, a malformed chunk) and answers
those in ``text/plain``.  The upstream, and every other client, gets the same
``{"error": "..."}`` shape as for any other refusal: the servers' channels use
:class:`JsonErrorTask` instead of waitress's own error task.
"""

from __future__ import annotations

import json
from typing import Any

import waitress
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from dssr_core._validate import bounded


class JsonErrorTask(ErrorTask):
    """waitress's error answer, as ``{"error": "<reason>: <detail>"}``."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": f"{error.reason}: {bounded(str(error.body))}"}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def create_server(app: Any, *, host: str, port: int, threads: int, max_body: int) -> Any:
    """A waitress server for ``app`` whose own error answers are JSON; bodies above ``max_body`` are refused."""
    sockets: dict[int, Any] = {}
    server = waitress.create_server(
        app,
        map=sockets,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=max_body,
    )
    for listener in sockets.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = JsonErrorChannel
    return server
