"""A stand-in for ``dssr-server`` that answers ``/runstatus`` with a constant: what a poll cycle costs outside the app.

Run by ``benchmarks/poll_cycle.py --scale N --server-python benchmarks/runstatus_floor.sh``.
It is the real ``dssr-server`` (its ``/running``, ``/queued``, ``/gc`` and
everything else answer as they do) except that ``POST /runstatus`` answers
four nulls at once, after reading the request, without parsing it or looking
at any job.  The cycle it measures is then what waitress, the TCP connections,
the benchmark's client and the cluster on the same machine cost: the floor
under the real server's figure.  A stand-in, named as one: never a result of
the server.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

from flask import Flask

import dssr_server.__main__ as server
from dssr_core import Downstream, Settings
from dssr_server.app import create_app as real_create_app

ANSWER = b"[null,null,null,null]\n"


def create_app(downstream: Downstream, settings: Settings | None = None) -> Flask:
    app = real_create_app(downstream, settings)
    inner = app.wsgi_app

    def constant_runstatus(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/runstatus":
            return inner(environ, start_response)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))])
        return [ANSWER]

    app.wsgi_app = constant_runstatus  # type: ignore[method-assign]  # WSGI middleware goes in as Flask documents
    return app


server.create_app = create_app  # type: ignore[attr-defined]  # replaces the name main() calls

if __name__ == "__main__":
    sys.exit(server.main([]))
