"""The proxy's request handling: parsing a request head, routing by host or path, the head passed on."""

from __future__ import annotations

import logging

import pytest

from dssr_core._interactive import JobsDomain
from dssr_core._proxy import BadHead, forwarded_head, parse_head, route
from dssr_core.batch._ssh import PARAMIKO_TRANSPORT_LOGGER, RefusedChannelFilter

LABEL = "42-abcdefghijklmnopqrst"


def head(target: str = "/", host: str = "x", *extra: str) -> bytes:
    return "\r\n".join([f"GET {target} HTTP/1.1", f"Host: {host}", *extra]).encode()


@pytest.mark.parametrize(
    "host, label",
    [
        (f"{LABEL}.jobs.example.org", LABEL),
        (f"{LABEL}.JOBS.example.org:443", LABEL),
        (f"{LABEL}.other.example.org", None),
        ("jobs.example.org", None),
        (f"a.{LABEL}.jobs.example.org", None),
        ("", None),
    ],
)
def test_host_based_routing_takes_the_first_name_under_the_domain(host, label):
    assert route(JobsDomain.parse("jobs.example.org"), parse_head(head(host=host))) == label


@pytest.mark.parametrize(
    "target, label",
    [
        (f"/job{LABEL}/", LABEL),
        (f"/job{LABEL}", LABEL),
        (f"/job{LABEL}/ws?token=x", LABEL),
        (f"/jobs/{LABEL}/", None),
        ("/", None),
        (f"/x/job{LABEL}/", None),
    ],
)
def test_path_based_routing_takes_the_label_after_the_prefix(target, label):
    assert route(JobsDomain.parse("portal.example.org/job$"), parse_head(head(target))) == label


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/2\r\nHost: x",
        b"GET http://evil/ HTTP/1.1\r\nHost: x",
        b"GET / HTTP/1.1 extra\r\nHost: x",
        b"GET / HTTP/1.1\r\nBad Header: x",
        b"G(ET / HTTP/1.1",
    ],
)
def test_malformed_heads_are_refused(raw):
    with pytest.raises(BadHead):
        parse_head(raw)


def test_a_plain_request_goes_on_with_connection_close_and_the_client_address():
    request = parse_head(
        head("/a?b=c", "h", "Connection: keep-alive", "Keep-Alive: 5", "X-Forwarded-For: 10.0.0.9", "Cookie: k=v")
    )
    text = forwarded_head(request, "192.0.2.1").decode()
    assert text.startswith("GET /a?b=c HTTP/1.1\r\nHost: h\r\n") and text.endswith("\r\n\r\n")
    assert "Connection: close" in text and "keep-alive" not in text.lower()
    assert "X-Forwarded-For: 10.0.0.9, 192.0.2.1" in text and "Cookie: k=v" in text


def test_a_websocket_upgrade_goes_on_as_an_upgrade():
    request = parse_head(
        head(
            "/ws",
            "h",
            "Connection: keep-alive, Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: abc",
            "Sec-WebSocket-Version: 13",
        )
    )
    assert request.upgrade == "websocket"
    text = forwarded_head(request, "192.0.2.1").decode()
    assert "Connection: Upgrade\r\nUpgrade: websocket" in text and "Connection: close" not in text
    assert "Sec-WebSocket-Key: abc" in text


# --------------------------------------------------------------------------- refusals, through a running proxy
def _world():
    from dssr_core import JobRef, JobState, JobStatus, Settings
    from dssr_core._interactive import InteractiveSettings
    from dssr_core._services import JobServices
    from tests.core.test_services import KEY, Double

    connector = Double()
    settings = InteractiveSettings.from_settings(
        Settings(
            {
                "JARVICE_JOBS_DOMAIN": "jobs.example.org",
                "JARVICE_DSSR_INTERACTIVE_KEY": KEY,
                "JARVICE_SERVICE_PORT": "7000",
            }
        )
    )
    connector.jobs = [JobStatus(JobRef("desk", 0, "11"), JobState.RUNNING, ("n3",), owner="kirby")]
    connector.files[("11", "interactive")] = "n3\n"
    return connector, settings, JobServices(connector, settings)


def test_an_app_that_does_not_answer_is_a_502_page_and_one_info_line_and_an_ended_job_a_404(caplog):
    from dssr_core._proxy import JobProxy
    from tests.interactive.clients import get

    connector, settings, services = _world()
    proxy = JobProxy(services, "127.0.0.1", 0, idle_timeout=5).start()
    url = f"http://{settings.label('desk', 42)}.jobs.example.org/vnc.html"
    try:
        with caplog.at_level(logging.DEBUG):
            reply = get(url, connect=proxy.address)
        assert reply.status == 502 and reply.headers["content-type"].startswith("text/html")
        assert "is not answering (yet)" in reply.text and reply.closed and reply.headers["retry-after"] == "5"
        lines = [r for r in caplog.records if r.name == "dssr_core.proxy" and "not answering" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.INFO, caplog.text
        assert "job 11:" in lines[0].getMessage() and "n3 port 7000" in lines[0].getMessage()
        assert "Connect failed" in lines[0].getMessage()  # the reason
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        connector.jobs = []  # the job has ended
        assert get(url, connect=proxy.address).status == 404
    finally:
        proxy.close()


def _paramiko_record(level: int, msg: str) -> logging.LogRecord:
    """A record as paramiko's Transport._log makes it (the message formatted already)."""
    return logging.LogRecord(PARAMIKO_TRANSPORT_LOGGER, level, "transport.py", 2864, msg, (), None)


def test_paramikos_error_line_for_a_refused_channel_is_debug_at_most_and_other_errors_stay():
    refused = "Secsh channel 3 open FAILED: Connection refused: Connect failed"
    logger = logging.getLogger(PARAMIKO_TRANSPORT_LOGGER)
    assert any(isinstance(f, RefusedChannelFilter) for f in logger.filters)  # put there when dssr_core.batch._ssh loads
    old = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert not logger.filter(_paramiko_record(logging.ERROR, refused))
        logger.setLevel(logging.DEBUG)
        record = _paramiko_record(logging.ERROR, refused)
        assert logger.filter(record) and (record.levelno, record.levelname) == (logging.DEBUG, "DEBUG")
        other = _paramiko_record(logging.ERROR, "Socket exception: Connection reset by peer (104)")
        assert logger.filter(other) and other.levelno == logging.ERROR
    finally:
        logger.setLevel(old)
