"""``POST /runstatus`` answered by the fast path is answered exactly as Flask's route answers it.

Two apps on one connector double: the app as served, and the same app with
its fast path taken out (every request through Flask).  Whatever is sent, both
give the same status, content type, body and log lines; and plain requests
really are answered without Flask (no Flask request is started for them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from urllib.parse import urlencode

import flask
import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dssr_core import ClusterError, Downstream, JobRef, JobState, JobStatus, Settings
from dssr_local.shell import ShellExecutor
from dssr_server.app import create_app
from dssr_server.fastpath import MAX_PLAIN_BODY, RunstatusFastPath
from dssr_server.tracking import RequestTracking
from tests import helpers
from tests.helpers import ConnectorDouble
from tests.server.test_operations import sample

TOKEN = "fast-path-token"
FORM = "application/x-www-form-urlencoded"
RUNNING = JobStatus(JobRef("jarvice-kirby-7", 7, "107"), JobState.RUNNING, nodes=("node1", "node2"), elapsed="00:00:42")
QUEUED = JobStatus(JobRef("jarvice-kirby-8", 8, "108"), JobState.QUEUED)
#: job ids whose status lookup fails: the cluster did not answer, and a bug
UNREACHABLE, BROKEN = "201", "202"


class Double(ConnectorDouble):
    """Two jobs; looking up job UNREACHABLE fails as a lost cluster does, BROKEN as a bug does."""

    def snapshot(self) -> Sequence[JobStatus]:
        return [RUNNING, QUEUED]

    def status(self, ref: JobRef) -> JobStatus | None:
        if ref.jobid == UNREACHABLE:
            raise ClusterError("Connection to the cluster lost", transient=True)
        if ref.jobid == BROKEN:
            raise RuntimeError("a bug's own words, never shown")
        return super().status(ref)


def without_fast_path(app: Flask) -> Flask:
    """``app`` with every request going through Flask (its fast path taken out of the WSGI stack)."""
    tracking = app.wsgi_app
    assert isinstance(tracking, RequestTracking) and isinstance(tracking.app, RunstatusFastPath)
    tracking.app = tracking.app.app
    return app


@dataclass
class Apps:
    served: Flask
    #: the same app, every request through Flask
    flask_only: Flask
    #: the upstream's token the apps require, if any
    token: str | None

    def headers(self) -> dict[str, str]:
        """The headers of a plain ``/runstatus``."""
        return auth(self.token) | {"Content-Type": FORM}


@pytest.fixture(scope="module", params=[None, TOKEN], ids=["open", "token"])
def apps(request: pytest.FixtureRequest) -> Iterator[Apps]:
    env = {} if request.param is None else {"JARVICE_DSSR_AUTH_TOKEN": request.param}
    downstream = Downstream(Double(), ShellExecutor(Settings({})))
    served, flask_only = create_app(downstream, Settings(env)), create_app(downstream, Settings(env))
    yield Apps(served, without_fast_path(flask_only), request.param)
    downstream.close()


def answer(app: Flask, body: bytes, headers: dict[str, str], caplog: pytest.LogCaptureFixture) -> tuple[Any, ...]:
    """What a client and the log see of ``POST /runstatus``: status, content type, body, log lines."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dssr_server"):
        got = app.test_client().post("/runstatus", data=body, headers=headers)
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    return got.status, got.headers.get("Content-Type"), got.get_data(), lines


def started_in_flask(app: Flask, body: bytes, headers: dict[str, str]) -> bool:
    """Whether answering ``POST /runstatus`` started a Flask request."""
    seen: list[object] = []

    def record(sender: object, **extra: object) -> None:
        seen.append(sender)

    with flask.request_started.connected_to(record, app):
        app.test_client().post("/runstatus", data=body, headers=headers)
    return bool(seen)


def form(args: Any) -> bytes:
    """The upstream's form body (``tests.helpers.form``) encoded; a string is sent as it is, not as JSON."""
    return urlencode({"args": args} if isinstance(args, str) else helpers.form(args)).encode()


def auth(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


JOB = {"name": "jarvice-kirby-7", "number": 7, "jobid": "107"}
#: args values: the jobs known, unknown or failing, and every kind of bad value
ARGS = st.one_of(
    st.sampled_from(
        [
            JOB,
            {"name": "jarvice-kirby-8", "number": 8, "jobid": "108"},
            {"name": "jarvice-kirby-7", "number": 7, "jobid": "108"},
            {"name": "jarvice-kirby-9", "number": 9, "jobid": UNREACHABLE},
            {"name": "jarvice-kirby-9", "number": 9, "jobid": BROKEN},
            {"name": "x; rm -rf /", "number": 1, "jobid": "1"},
            {"name": "jarvice-kirby-7", "number": "seven", "jobid": "107"},
            {"name": "jarvice-kirby-7", "number": 7},
            [1, 2],
            "text",
            None,
            3,
        ]
    ),
    st.dictionaries(
        st.sampled_from(["name", "number", "jobid", "extra"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
        max_size=4,
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        FORM,
        f"{FORM}; charset=UTF-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        None,
    ]
)
BODIES = st.one_of(
    ARGS.map(form),
    ARGS.map(lambda args: form(args) + b"&args=" + form(JOB)[5:]),
    st.just(b"args=%7B%22name%22%3A%20%22%FF%22%7D"),  # percent-encoded bytes that are not UTF-8
    st.just(b"args=" + json.dumps(JOB).encode("utf-16")),  # raw bytes that are not UTF-8
    st.just(b"other=1"),
    st.just(b""),
    st.just(form({**JOB, "pad": "x" * MAX_PLAIN_BODY})),  # larger than the fast path takes
    st.binary(max_size=64),
)
TOKENS = st.sampled_from([None, TOKEN, "wrong", ""])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, content_type=CONTENT_TYPES, token=TOKENS)
def test_whatever_is_sent_both_paths_answer_and_log_the_same(
    apps: Apps,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str | None,
    token: str | None,
) -> None:
    headers = auth(token) | ({} if content_type is None else {"Content-Type": content_type})
    assert answer(apps.served, body, headers, caplog) == answer(apps.flask_only, body, headers, caplog)


@pytest.mark.parametrize(
    "args",
    [JOB, {"name": "jarvice-kirby-9", "number": 9, "jobid": UNREACHABLE}, "oops"],
    ids=["running", "cluster-lost", "bad-args"],
)
def test_a_plain_runstatus_is_answered_without_starting_a_flask_request(apps: Apps, args: Any) -> None:
    assert not started_in_flask(apps.served, form(args), apps.headers())
    assert started_in_flask(apps.flask_only, form(args), apps.headers())


def test_the_answers_the_upstream_relies_on(apps: Apps) -> None:
    client, headers = apps.served.test_client(), apps.headers()
    running = client.post("/runstatus", data=form(JOB), headers=headers)
    assert running.status_code == 200 and running.content_type == "application/json"
    assert running.get_json() == [["node1", "node2"], "00:00:42", "jarvice-kirby-7/7/107", None]
    assert running.headers["X-Request-Id"]
    other = client.post("/runstatus", data=form({**JOB, "jobid": "108"}), headers=headers)
    assert other.get_json() == [None, None, None, None]
    lost = client.post("/runstatus", data=form({**JOB, "jobid": UNREACHABLE}), headers=headers)
    assert lost.status_code == 500 and lost.get_json() == {"error": "Connection to the cluster lost"}
    broken = client.post("/runstatus", data=form({**JOB, "jobid": BROKEN}), headers=headers)
    assert broken.status_code == 500 and broken.get_json() == {"error": "internal error"}


@pytest.mark.parametrize(
    "headers", [{}, auth("wrong"), {"Authorization": f"Basic {TOKEN}"}], ids=["none", "wrong", "basic"]
)
def test_a_runstatus_without_the_token_is_refused_when_one_is_required(headers: dict[str, str]) -> None:
    downstream = Downstream(Double(), ShellExecutor(Settings({})))
    app = create_app(downstream, Settings({"JARVICE_DSSR_AUTH_TOKEN": TOKEN}))
    refused = app.test_client().post("/runstatus", data=form(JOB), headers=headers | {"Content-Type": FORM})
    assert refused.status_code == 401 and "bearer token" in refused.get_json()["error"]
    downstream.close()


def test_fast_path_answers_carry_their_request_id_and_are_counted_by_route(apps: Apps) -> None:
    client = apps.served.test_client()
    before = (
        sample(
            client.get("/metrics", headers=auth(apps.token)).get_data(as_text=True),
            "dssr_http_requests_total",
            endpoint="/runstatus",
            status="200",
        )
        or 0
    )
    answer = client.post("/runstatus", data=form(JOB), headers=apps.headers() | {"X-Request-Id": "poll-1"})
    assert answer.status_code == 200 and answer.headers["X-Request-Id"] == "poll-1"
    assert not started_in_flask(apps.served, form(JOB), apps.headers())
    text = client.get("/metrics", headers=auth(apps.token)).get_data(as_text=True)
    assert sample(text, "dssr_http_requests_total", endpoint="/runstatus", status="200") == before + 2
    assert (sample(text, "dssr_http_request_duration_seconds_count", endpoint="/runstatus") or 0) >= before + 2
