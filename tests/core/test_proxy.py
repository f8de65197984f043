"""The proxy's request handling: parsing a request head, routing by host or path, the head passed on."""

from __future__ import annotations

import pytest

from dssr_core.interactive import JobsDomain
from dssr_core.proxy import BadHead, parse_head, route, forwarded_head

LABEL = "42-abcdefghijklmnopqrst"


def head(target: str = "/", host: str = "x", *extra: str) -> bytes:
    return "\r\n".join([f"GET {target} HTTP/1.1", f"Host: {host}", *extra]).encode()


@pytest.mark.parametrize("host, label", [
    (f"{LABEL}.jobs.example.org", LABEL),
    (f"{LABEL}.JOBS.example.org:443", LABEL),
    (f"{LABEL}.other.example.org", None),
    ("jobs.example.org", None),
    (f"a.{LABEL}.jobs.example.org", None),
    ("", None),
])
def test_host_based_routing_takes_the_first_name_under_the_domain(host, label):
    assert route(JobsDomain.parse("jobs.example.org"), parse_head(head(host=host))) == label


@pytest.mark.parametrize("target, label", [
    (f"/job{LABEL}/", LABEL),
    (f"/job{LABEL}", LABEL),
    (f"/job{LABEL}/ws?token=x", LABEL),
    (f"/jobs/{LABEL}/", None),
    ("/", None),
    (f"/x/job{LABEL}/", None),
])
def test_path_based_routing_takes_the_label_after_the_prefix(target, label):
    assert route(JobsDomain.parse("portal.example.org/job$"), parse_head(head(target))) == label


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/2\r\nHost: x",
    b"GET http://evil/ HTTP/1.1\r\nHost: x",
    b"GET / HTTP/1.1 extra\r\nHost: x",
    b"GET / HTTP/1.1\r\nBad Header: x",
    b"G(ET / HTTP/1.1",
])
def test_malformed_heads_are_refused(raw):
    with pytest.raises(BadHead):
        parse_head(raw)


def test_a_plain_request_goes_on_with_connection_close_and_the_client_address():
    request = parse_head(head("/a?b=c", "h", "Connection: keep-alive", "Keep-Alive: 5", "X-Forwarded-For: 10.0.0.9",
                              "Cookie: k=v"))
    text = forwarded_head(request, "192.0.2.1").decode()
    assert text.startswith("GET /a?b=c HTTP/1.1\r\nHost: h\r\n") and text.endswith("\r\n\r\n")
    assert "Connection: close" in text and "keep-alive" not in text.lower()
    assert "X-Forwarded-For: 10.0.0.9, 192.0.2.1" in text and "Cookie: k=v" in text


def test_a_websocket_upgrade_goes_on_as_an_upgrade():
    request = parse_head(head("/ws", "h", "Connection: keep-alive, Upgrade", "Upgrade: websocket",
                              "Sec-WebSocket-Key: abc", "Sec-WebSocket-Version: 13"))
    assert request.upgrade == "websocket"
    text = forwarded_head(request, "192.0.2.1").decode()
    assert "Connection: Upgrade\r\nUpgrade: websocket" in text and "Connection: close" not in text
    assert "Sec-WebSocket-Key: abc" in text
