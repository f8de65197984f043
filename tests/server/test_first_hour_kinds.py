"""Issue 21's kinds tried again on dssr-server, one case each: bind and address handling, values that
are not what they claim to be, output that cannot be written, and what a client sees when the server
refuses a request early (a wrong content type, a body over the limit, a client that goes away mid-request).

Each case either was fixed here or already behaved: the test then guards it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.server.live import Server, free_port, wait_for
from tests.server.test_hostile_http import raw
from tests.server.test_startup import one_line, run_server

SECRET = "s3cret-upstream-token-0123456789abcdef"


@pytest.mark.parametrize(
    "flags, env, line",
    [
        (["--port", "70000"], {}, "--port='70000' is out of range: use an integer from 1 to 65535."),
        (["--port", "-1"], {}, "--port='-1' is out of range: use an integer from 1 to 65535."),
        (["--port", "5000.5"], {}, "--port='5000.5' is not an integer from 1 to 65535."),
        (["--threads", "0"], {}, "--threads='0' is out of range: use an integer from 1 to 256."),
        (
            [],
            {"WAITRESS_THREADS": "100000"},
            "WAITRESS_THREADS='100000' is out of range: use an integer from 1 to 256.",
        ),
        # a flag typed without a value took the default silently
        (["--host", ""], {}, "--host is empty: give a value, or leave the flag out."),
        (["--port", " "], {}, "--port is empty: give a value, or leave the flag out."),
        (["--connector", ""], {}, "--connector is empty: give a value, or leave the flag out."),
        ([], {"JARVICE_SCHED_LOGLEVEL": "loud"}, "JARVICE_SCHED_LOGLEVEL='loud' is not an integer from 0 to 50."),
    ],
)
def test_a_bad_port_thread_count_or_empty_flag_is_one_line_naming_it(
    tmp_path: Path, flags: list[str], env: dict[str, str], line: str
) -> None:
    assert one_line(run_server(*flags, env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state"), **env})) == line


def test_a_state_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    line = one_line(run_server("--port", str(free_port()), env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state")}))
    assert line == f"JARVICE_LOCAL_STATE_DIR='{tmp_path}/state' cannot be created: File exists."


BLANK = "JARVICE_DSSR_AUTH_TOKEN is blank: set it to a long random string (e.g. openssl rand -hex 32), or unset it."
UNSENDABLE = (
    "JARVICE_DSSR_AUTH_TOKEN holds a space, a control character or a character beyond ASCII, which no "
    "client sends in 'Authorization: Bearer <token>': use ASCII letters, digits and punctuation "
    "(e.g. openssl rand -hex 32)."
)


@pytest.mark.parametrize(
    "token, line",
    [
        ("   ", BLANK),
        ("\n", BLANK),
        (SECRET[:10] + " " + SECRET[10:], UNSENDABLE),
        (SECRET + "\x07", UNSENDABLE),
        (SECRET + "é", UNSENDABLE),
    ],
)
def test_an_upstream_token_no_client_could_send_stops_start_up_without_showing_it(
    tmp_path: Path, token: str, line: str
) -> None:
    """It started, and refused every request (the header's value is stripped, sent as ASCII)."""
    result = run_server(
        "--port",
        str(free_port()),
        env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state"), "JARVICE_DSSR_AUTH_TOKEN": token},
    )
    assert one_line(result, SECRET[:10], SECRET[10:]) == line


def test_an_upstream_token_read_with_its_files_newline_is_the_token_without_it(tmp_path: Path) -> None:
    """`JARVICE_DSSR_AUTH_TOKEN` from a secret file written by `echo`: the caller sends the token alone."""
    server = Server(tmp_path / "state", env={"JARVICE_DSSR_AUTH_TOKEN": SECRET + "\n"}).start()
    try:
        assert server.get("/running", headers={"Authorization": f"Bearer {SECRET}"}).status == 200
        refused = server.get("/running")
        assert refused.status == 401 and "error" in refused.json()
        assert server.get("/v1/jobs", headers={"Authorization": f"Bearer {SECRET}"}).status == 200
    finally:
        server.stop()
    assert SECRET not in server.log()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this host has no IPv6 loopback")
@pytest.mark.parametrize("how", ["--host", "WAITRESS_BIND_ADDRESS"])
def test_the_ipv6_loopback_serves_and_the_report_writes_its_url_with_brackets(tmp_path: Path, how: str) -> None:
    port = free_port()
    flags = ["--host", "::1"] if how == "--host" else []
    env = {**os.environ, "JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state")}
    if how != "--host":
        env["WAITRESS_BIND_ADDRESS"] = "::1"
    log = tmp_path / "log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dssr_server", *flags, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def live() -> bytes | None:
            try:
                with socket.create_connection(("::1", port), timeout=5) as sock:
                    sock.sendall(b"GET /live HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
                    return sock.recv(200)
            except OSError:
                return None

        assert wait_for(live).startswith(b"HTTP/1.1 200")
        assert f"listening on http://[::1]:{port} (loopback only;" in log.read_text()
    finally:
        process.terminate()
        assert process.wait(15) == 0


def test_a_version_or_help_that_cannot_be_written_is_said_and_a_closed_pipe_is_141(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "dssr_server", "--version"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == "dssr-server: cannot write its output (No space left on device).\n"
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dssr_server", "--help"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write)
    assert result.returncode == 141 and result.stderr == ""


# -- what a client sees when the server refuses a request early ---------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    live = Server(tmp_path_factory.mktemp("dssr-kinds") / "state").start()
    yield live
    live.stop()


def send(server: Server, request: bytes) -> tuple[int, str, Any]:
    """``request`` as is on a fresh connection: (status, content type, JSON body)."""
    status, kind, body = raw(server, request, timeout=30)
    return status, kind, json.loads(body)


def post(path: str, body: bytes, content_type: str | None) -> bytes:
    kind = f"Content-Type: {content_type}\r\n" if content_type is not None else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{kind}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


ARGS = json.dumps({"name": "kinds-1", "number": 1, "jobid": "1"})


@pytest.mark.parametrize("path", ["/runstatus", "/submit"])
@pytest.mark.parametrize(
    "content_type, said",
    [
        ("application/json", "The request body is of type 'application/json', not a form"),
        ("text/plain", "The request body is of type 'text/plain', not a form"),
        (None, "The request body is without a Content-Type, not a form"),
    ],
)
def test_a_body_that_is_no_form_is_a_400_naming_its_content_type(
    server: Server, path: str, content_type: str | None, said: str
) -> None:
    body = json.dumps({"args": json.loads(ARGS)}).encode()
    status, kind, answer = send(server, post(path, body, content_type))
    assert status == 400 and kind == "application/json"
    assert answer == {"error": f"{said}: send args=<JSON object> as application/x-www-form-urlencoded."}


def test_a_multipart_form_is_a_form(server: Server) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="args"\r\n\r\n' + ARGS.encode() + b"\r\n--b--\r\n"
    status, _, answer = send(server, post("/runstatus", body, "multipart/form-data; boundary=b"))
    assert status == 200 and answer == [None, None, None, None]


def test_a_body_over_the_limit_is_a_json_413_before_it_is_sent_and_the_server_serves_on(server: Server) -> None:
    """The answer comes once the headers say the size, before any of the body is sent."""
    size = 16 * 1024 * 1024 + 10
    head = (
        f"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    status, kind, answer = send(server, head)
    assert status == 413 and kind == "application/json" and "max_body" in str(answer["error"])
    # sent all the same, without waiting: the server refuses it and still serves
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        try:
            sock.sendall(head + b"args=" + b"x" * size)
        except OSError:  # it answered and closed before the whole body was sent
            pass
    assert server.get("/live").status == 200


@pytest.mark.parametrize(
    "request_start",
    [
        b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1000\r\n\r\nargs=%7B%22name",  # the body cut short
        b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Ty",  # the headers cut short
        b"POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nargs=",  # a chunk cut short
    ],
)
def test_a_client_that_goes_away_mid_request_leaves_no_trace_but_the_server_serves_on(
    server: Server, request_start: bytes
) -> None:
    before = server.get("/running").json(), server.get("/queued").json()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_start)
        time.sleep(0.2)
    time.sleep(0.3)
    assert server.get("/live").status == 200
    assert (server.get("/running").json(), server.get("/queued").json()) == before
    assert "Traceback" not in server.log()
