"""Hostile requests to the real server (waitress, local connector): each case of issue 12 over HTTP."""

from __future__ import annotations

import json
import socket
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import encode, legacy_template, submit_args
from tests.server.live import Answer, Server, wait_for

ABOVE_INT64 = "9999999999999999999"
JOB_ENDPOINTS = ("/terminate", "/exitstatus", "/release", "/events", "/runstatus")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    live = Server(tmp_path_factory.mktemp("dssr-hostile") / "state").start()
    yield live
    live.stop()


def refused(answer: Answer, status: int = 400) -> str:
    assert answer.status == status, answer.body[:300]
    error = answer.json()["error"]
    assert isinstance(error, str)
    return error


def job_args(**changes: Any) -> dict[str, Any]:
    return submit_args("hostile-1", 1, legacy_template("true"), key="shell") | changes


def test_non_ascii_text_as_base64_is_a_400(server: Server) -> None:
    assert "not valid base64" in refused(server.post("/submit", job_args(hpc_script={"shell": "é"})))


@pytest.mark.parametrize("digits", ["²", "\u0662"])
def test_digits_other_than_ascii_are_a_400(server: Server, digits: str) -> None:
    assert "nodes must be an integer" in refused(server.post("/submit", job_args(nodes=digits)))
    assert "qs.lines must be an integer" in refused(
        server.post("/request/hostile-1/1/1/tail", {"qs": {"lines": [digits]}})
    )


@pytest.mark.parametrize("path", JOB_ENDPOINTS)
def test_a_job_id_of_2_to_the_63_or_more_is_a_400_everywhere(server: Server, path: str) -> None:
    assert "not a valid job id" in refused(server.post(path, {"name": "a", "number": 1, "jobid": ABOVE_INT64}))


def test_a_job_id_of_2_to_the_63_or_more_is_a_400_in_request_paths(server: Server) -> None:
    assert "not a valid job id" in refused(server.post(f"/request/a/1/{ABOVE_INT64}/tail", {"qs": {}}))


@pytest.mark.parametrize("field", ["number", "nodes"])
def test_number_and_nodes_of_10_to_the_30_are_a_400(server: Server, field: str) -> None:
    assert "must be an integer from" in refused(server.post("/submit", job_args(**{field: 10**30})))


def test_a_name_with_a_trailing_newline_is_a_400_and_creates_nothing(server: Server) -> None:
    assert "is not allowed" in refused(server.post("/submit", job_args(name="nl-test\n")))
    assert "not a valid job id" in refused(server.post("/exitstatus", {"name": "a", "number": 1, "jobid": "1\n"}))
    listed = server.get("/running").json() + server.get("/queued").json()
    assert not any(name.startswith("nl-test") for name, _ in listed)


def test_release_of_an_unknown_job_is_a_404(server: Server) -> None:
    assert "no job 424242" in refused(server.post("/release", {"name": "a", "number": 1, "jobid": "424242"}), 404)


def test_a_format_spec_in_the_template_is_a_small_400(server: Server) -> None:
    text = legacy_template("true").replace("{DOWNSTREAM_PARAMETERS}", "{DOWNSTREAM_PARAMETERS:>20000000}")
    answer = server.post("/submit", job_args(hpc_script={"shell": encode(text)}))
    assert "braces other than" in refused(answer) and len(answer.body) < 1000


def test_a_template_repeating_the_field_9000_times_is_a_small_400(server: Server) -> None:
    text = legacy_template("true").replace("{DOWNSTREAM_PARAMETERS}", "{DOWNSTREAM_PARAMETERS}\n" * 9000)
    answer = server.post("/submit", job_args(hpc_script={"shell": encode(text)}))
    assert "it must have one" in refused(answer) and len(answer.body) < 1000


def test_a_10_mb_name_is_neither_echoed_nor_logged(server: Server) -> None:
    logged = len(server.log())
    for path in ("/submit", "/exitstatus"):
        answer = server.post(path, job_args(name="n" * 10_000_000, jobid="1"))
        assert "is not allowed" in refused(answer) and len(answer.body) < 1000
    answer = server.post("/request/" + "p" * 100_000, {})
    assert len(answer.body) < 2000
    assert len(server.log()) - logged < 4000


def raw(server: Server, request: bytes, timeout: float = 10) -> tuple[int, str, bytes]:
    """Send ``request`` as is on a fresh connection; (status, content type, body) of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), body


@pytest.mark.parametrize(
    "length, status",
    [("abc", 400), ("-5", 400), ("1" * 30, 413), (str(64 * 1024 * 1024), 413)],
)
def test_errors_raised_inside_waitress_are_json(server: Server, length: str, status: int) -> None:
    request = (
        f"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\nargs=%7B%7D"
    ).encode()
    code, content_type, body = raw(server, request)
    assert code == status and content_type == "application/json"
    assert isinstance(json.loads(body)["error"], str)


def test_a_malformed_chunked_body_gets_a_json_error(server: Server) -> None:
    request = (
        b"POST /online HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"zz\r\nargs=1\r\n0\r\n\r\n"
    )
    code, content_type, body = raw(server, request)
    assert code == 400 and content_type == "application/json" and "error" in json.loads(body)


def test_state_is_unchanged_after_the_refusals(server: Server) -> None:
    before = (server.get("/running").json(), server.get("/queued").json())
    server.post("/submit", job_args(nodes="²"))
    server.post("/submit", job_args(number=10**30))
    assert (server.get("/running").json(), server.get("/queued").json()) == before


# -- 14. safe by default ------------------------------------------------------------


def report_of(server: Server) -> list[str]:
    return [
        line
        for line in server.log().splitlines()
        if "dssr-server" in line and "listening" in line or "reachable from the network" in line
    ]


def test_without_variables_or_flags_the_server_runs_local_and_shell_on_loopback_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "JARVICE_BAREMETAL_CONNECTOR",
        "JARVICE_BAREMETAL_EXECUTOR",
        "WAITRESS_BIND_ADDRESS",
        "JARVICE_DSSR_AUTH_TOKEN",
    ):
        monkeypatch.delenv(variable, raising=False)
    server = Server(tmp_path / "state", flags=[]).start()
    try:
        args = submit_args("default-1", 1, legacy_template("echo from-the-default"), key="shell")
        jobid, _ = server.post("/submit", args).json()
        job = {"name": "default-1", "number": 1, "jobid": jobid}
        end = wait_for(lambda: (a := server.post("/exitstatus", job)).status == 200 and a.json())
        assert "from-the-default" in end[2][0]
    finally:
        server.stop()
    report = report_of(server)
    assert len(report) == 1, server.log()
    assert f"http://127.0.0.1:{server.port} (loopback only; connector local, executor shell" in report[0]


def test_on_every_address_without_a_token_the_report_warns_that_anyone_can_run_commands(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", flags=["--host", "0.0.0.0"]).start()
    server.stop()
    warning = [line for line in report_of(server) if "WARNING" in line]
    assert len(warning) == 1, server.log()
    assert "reachable from the network on 0.0.0.0 without JARVICE_DSSR_AUTH_TOKEN" in warning[0]
    assert "run any command on this host" in warning[0]


def test_with_a_token_the_network_report_does_not_warn(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", flags=["--host", "0.0.0.0"], env={"JARVICE_DSSR_AUTH_TOKEN": "t0ken"}).start()
    server.stop()
    assert not [line for line in report_of(server) if "WARNING" in line]
    assert "(network; connector local" in report_of(server)[0]


def test_a_post_without_a_body_is_still_a_json_400(server: Server) -> None:
    answer = server.request("POST", "/runstatus", data=urllib.parse.urlencode({}).encode())
    assert "no form field 'args'" in refused(answer)
