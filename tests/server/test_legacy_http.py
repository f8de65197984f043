"""Every legacy endpoint through the real HTTP server (waitress) on the local connector."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import SUCCESS_MARKER, legacy_template, submit_args
from tests.server.live import Answer, Server, wait_for

_numbers = itertools.count(100)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dssr-http")
    data = root / "data"
    data.mkdir()
    live = Server(
        root / "state",
        env={
            "JARVICE_LOCAL_DATA_DIR": str(data),
            "JARVICE_LOCAL_KILL_GRACE": "1",
            "JARVICE_LOCAL_MAX_JOBS": "8",
        },
    ).start()
    yield live
    live.stop()


def new_job(server: Server, command: str, **template: Any) -> dict[str, Any]:
    """Submit a legacy template job; the ``args`` naming it afterwards."""
    number = next(_numbers)
    name = f"jarvice-kirby-{number}"
    answer = server.post("/submit", submit_args(name, number, legacy_template(command, **template), key="shell"))
    assert answer.status == 200, answer.text
    jobid, fscript = answer.json()
    assert isinstance(jobid, str) and isinstance(fscript, str)
    return {"name": name, "number": number, "jobid": jobid}


def runstatus(server: Server, job: dict[str, Any]) -> list[Any]:
    answer = server.post("/runstatus", job)
    assert answer.status == 200, answer.text
    statuses: list[Any] = answer.json()
    return statuses


def finished(server: Server, job: dict[str, Any], timeout: float = 30.0) -> list[Any]:
    """Poll /exitstatus the way the upstream does: a 500 means 'ask again'."""

    def ask() -> list[Any] | None:
        answer = server.post("/exitstatus", job)
        if answer.status == 500:
            return None
        assert answer.status == 200, answer.text
        status: list[Any] = answer.json()
        return status

    return wait_for(ask, timeout, interval=0.2)


def listed(answer: Answer, job: dict[str, Any]) -> bool:
    assert answer.status == 200, answer.text
    return [job["name"], job["jobid"]] in answer.json()


def error_of(answer: Answer, status: int = 400) -> str:
    assert answer.status == status, (answer.status, answer.text)
    body = answer.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"]
    return str(body["error"])


# -- simple endpoints ---------------------------------------------------------


def test_live_answers_ok(server: Server) -> None:
    answer = server.get("/live")
    assert (answer.status, answer.json()) == (200, {"status": "OK"})


def test_gc_answers_ok_when_the_cluster_answers(server: Server) -> None:
    answer = server.get("/gc")
    assert (answer.status, answer.json()) == (200, {"status": "OK"})


def test_nodes_answers_the_text_true(server: Server) -> None:
    answer = server.get("/nodes")
    assert (answer.status, answer.text) == (200, "true")


def test_online_answers_true_whatever_it_is_sent(server: Server) -> None:
    for args in ({}, {"name": "x"}, None):
        answer = server.post("/online", args)
        assert (answer.status, answer.json()) == (200, True)


def test_running_and_queued_are_json_lists(server: Server) -> None:
    for path in ("/running", "/queued"):
        answer = server.get(path)
        assert answer.status == 200 and isinstance(answer.json(), list)


# -- a job's life ---------------------------------------------------------------


def test_a_job_is_submitted_runs_and_ends_with_rc_0_and_its_output(server: Server) -> None:
    job = new_job(server, "echo started; sleep 2; echo done")
    wait_for(lambda: listed(server.get("/running"), job) or None)
    nodes, elapsed, path, last = runstatus(server, job)
    assert isinstance(nodes, list) and nodes and all(isinstance(n, str) for n in nodes)
    assert isinstance(elapsed, str) and len(elapsed.split(":")) == 3
    assert path == f"{job['name']}/{job['number']}/{job['jobid']}" and last is None
    tail = wait_for(
        lambda: (
            (a := server.post(f"/request/{path}/tail", {"qs": {"lines": ["5"]}})).status == 200
            and "started" in a.text
            and a
            or None
        )
    )
    assert tail.content_type.startswith("text/plain")
    assert not listed(server.get("/queued"), job)
    rc, elapsed, (stdout, termination) = finished(server, job)
    assert rc == 0
    assert "started" in stdout and "done" in stdout
    assert termination == "<< termination state: COMPLETED -- see STDOUT for job errors >>"
    assert elapsed >= "00:00:02"
    assert not listed(server.get("/running"), job)
    assert runstatus(server, job) == [None, None, None, None]


def test_exitstatus_of_a_running_job_is_500_so_the_upstream_asks_again(server: Server) -> None:
    job = new_job(server, "sleep 5")
    wait_for(lambda: listed(server.get("/running"), job) or None)
    error_of(server.post("/exitstatus", job), 500)
    server.post("/terminate", job)


def test_exitstatus_twice_still_answers_with_empty_output(server: Server) -> None:
    job = new_job(server, "echo once")
    first = finished(server, job)
    assert first[0] == 0 and "once" in first[2][0]
    again = server.post("/exitstatus", job)
    assert again.status == 200, again.text
    rc, _, (stdout, _) = again.json()
    assert rc == 0 and stdout == ""


def test_a_failing_job_ends_with_rc_1(server: Server) -> None:
    job = new_job(server, "echo failing; exit 3")
    rc, _, (stdout, termination) = finished(server, job)
    assert rc == 1 and "failing" in stdout and SUCCESS_MARKER not in stdout
    assert "termination state:" in termination


def test_terminate_answers_true_and_the_job_ends_with_rc_minus_15(server: Server) -> None:
    job = new_job(server, "sleep 60")
    wait_for(lambda: listed(server.get("/running"), job) or None)
    answer = server.post("/terminate", {**job, "force": False, "nodes": 1})
    assert (answer.status, answer.json()) == (200, True)
    rc, _, _ = finished(server, job)
    assert rc == -15


def test_terminate_with_force_kills_at_once(server: Server) -> None:
    job = new_job(server, "trap '' TERM; sleep 60")
    wait_for(lambda: listed(server.get("/running"), job) or None)
    assert server.post("/terminate", {**job, "force": True}).json() is True
    rc, _, _ = finished(server, job, timeout=10)
    assert rc == -15


def test_terminating_a_finished_job_is_not_an_error(server: Server) -> None:
    job = new_job(server, "true")
    finished(server, job)
    answer = server.post("/terminate", job)
    assert (answer.status, answer.json()) == (200, True)


def test_a_held_job_is_queued_until_released(server: Server) -> None:
    job = new_job(server, "echo released", extra={"JOBOBJ_DEVICES": '["sbatch_hold=true"]'})
    assert wait_for(lambda: listed(server.get("/queued"), job) or None)
    assert not listed(server.get("/running"), job)
    answer = server.post("/release", job)
    assert (answer.status, answer.json()) == (200, True)
    rc, _, (stdout, _) = finished(server, job)
    assert rc == 0 and "released" in stdout


def test_submit_is_idempotent_by_name(server: Server) -> None:
    number = next(_numbers)
    args = submit_args(f"jarvice-kirby-{number}", number, legacy_template("sleep 2"), key="shell")
    first = server.post("/submit", args).json()[0]
    second = server.post("/submit", args).json()[0]
    assert first == second
    finished(server, {"name": args["name"], "number": number, "jobid": first})


def test_fscript_carries_no_credentials(server: Server) -> None:
    secret = json.dumps({"server": "r.example.com", "username": "u", "password": "hunter2-pw"})
    ctr = base64.b64encode(json.dumps({"auths": {"r.example.com": {"auth": "c2VjcmV0OnRva2Vu"}}}).encode()).decode()
    number = next(_numbers)
    template = legacy_template("true", extra={"JOBOBJ_DOCKER_SECRET": secret, "JOBOBJ_CTRSECRET": ctr})
    answer = server.post("/submit", submit_args(f"jarvice-kirby-{number}", number, template, key="shell"))
    assert answer.status == 200, answer.text
    jobid, fscript = answer.json()
    assert "hunter2-pw" not in fscript and ctr not in fscript and "c2VjcmV0OnRva2Vu" not in fscript
    finished(server, {"name": f"jarvice-kirby-{number}", "number": number, "jobid": jobid})


def test_runstatus_of_an_unknown_job_is_all_null(server: Server) -> None:
    assert runstatus(server, {"name": "jarvice-nobody-1", "number": 1, "jobid": "999999"}) == [None] * 4


def test_events_answer_a_json_string(server: Server) -> None:
    job = new_job(server, "sleep 1")
    answer = server.post("/events", job)
    assert answer.status == 200 and isinstance(answer.json(), str)
    finished(server, job)


# -- /request -------------------------------------------------------------------


def test_request_ping_connect_and_unknown_methods_answer_200_empty(server: Server) -> None:
    job = new_job(server, "sleep 1")
    base = f"/request/{job['name']}/{job['number']}/{job['jobid']}"
    for method in ("ping", "connect", "whatever"):
        answer = server.post(f"{base}/{method}", {"qs": {}})
        assert (answer.status, answer.body) == (200, b""), method
    finished(server, job)


def test_request_info_answers_the_info_object(server: Server) -> None:
    job = new_job(server, "sleep 1")
    answer = server.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/info", {"qs": {}})
    assert answer.status == 200
    assert answer.json() == {"about": "", "help": "", "url": "", "actions": {}}
    finished(server, job)


def test_request_screenshot_is_404(server: Server) -> None:
    job = new_job(server, "sleep 1")
    answer = server.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/screenshot", {"qs": {}})
    assert answer.status == 404
    finished(server, job)


def test_request_tail_gives_the_last_lines(server: Server) -> None:
    job = new_job(server, "for i in 1 2 3 4 5 6; do echo line$i; done; sleep 3")
    base = f"/request/{job['name']}/{job['number']}/{job['jobid']}"
    answer = wait_for(
        lambda: (
            (a := server.post(f"{base}/tail", {"qs": {"lines": ["2"]}})).status == 200
            and "line6" in a.text
            and a
            or None
        )
    )
    assert answer.text.splitlines() == ["line5", "line6"]
    server.post("/terminate", job)
    finished(server, job)


def test_request_tail_of_a_job_without_output_is_404(server: Server) -> None:
    answer = server.post("/request/jarvice-nobody-2/2/999998/tail", {"qs": {}})
    assert answer.status == 404


def test_request_shutdown_terminates_the_job(server: Server) -> None:
    job = new_job(server, "sleep 60")
    wait_for(lambda: listed(server.get("/running"), job) or None)
    answer = server.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/shutdown", {"qs": {}})
    assert (answer.status, answer.body) == (200, b"")
    assert finished(server, job)[0] == -15


def test_request_abort_kills_the_job(server: Server) -> None:
    job = new_job(server, "trap '' TERM; sleep 60")
    wait_for(lambda: listed(server.get("/running"), job) or None)
    answer = server.post(f"/request/{job['name']}/{job['number']}/{job['jobid']}/abort", {"qs": {}})
    assert (answer.status, answer.body) == (200, b"")
    assert finished(server, job, timeout=10)[0] == -15


def test_request_pvcls_lists_a_folder_with_data_prefix(server: Server) -> None:
    data = Path(server.env["JARVICE_LOCAL_DATA_DIR"])
    (data / "project" / "inputs").mkdir(parents=True, exist_ok=True)
    (data / "project" / "run.sh").write_text("echo hi\n")
    answer = server.post("/request/pvcls", {"qs": {"path": ["/project"]}})
    assert answer.status == 200 and answer.content_type.startswith("text/plain")
    assert sorted(answer.text.splitlines()) == ["/data/project/inputs/", "/data/project/run.sh"]


def test_request_pvcls_with_details_gives_mtime_and_size(server: Server) -> None:
    data = Path(server.env["JARVICE_LOCAL_DATA_DIR"])
    (data / "sized").mkdir(exist_ok=True)
    (data / "sized" / "eight.txt").write_text("12345678")
    answer = server.post("/request/pvcls", {"qs": {"path": ["/sized"], "details": ["true"]}})
    assert answer.status == 200
    (line,) = answer.text.splitlines()
    mtime, size, path = line.split(" ")
    assert int(mtime) > 1_600_000_000 and size == "8" and path == "/data/sized/eight.txt"


def test_request_pvcls_outside_the_storage_is_refused(server: Server) -> None:
    error_of(server.post("/request/pvcls", {"qs": {"path": ["/../../etc"]}}))


def test_request_with_neither_shape_is_400(server: Server) -> None:
    assert "Unknown request path" in error_of(server.post("/request/a/b", {"qs": {}}))


# -- malformed requests -------------------------------------------------------------

JOB_ENDPOINTS = ["/runstatus", "/exitstatus", "/terminate", "/release", "/events"]


@pytest.mark.parametrize("path", JOB_ENDPOINTS + ["/submit", "/request/pvcls"])
def test_missing_args_field_is_400(server: Server, path: str) -> None:
    assert "no form field 'args'" in error_of(server.post(path, raw="other=1"))


@pytest.mark.parametrize("path", JOB_ENDPOINTS + ["/submit", "/request/pvcls"])
def test_args_not_json_is_400(server: Server, path: str) -> None:
    assert "not valid JSON" in error_of(server.post(path, raw="args=%7Bname%3A"))


@pytest.mark.parametrize("value, kind", [([1, 2], "a list"), ("x", "a string"), (3, "a number"), (None, "null")])
def test_args_not_an_object_is_400(server: Server, value: Any, kind: str) -> None:
    message = error_of(
        server.post("/runstatus", value if value is not None else None, raw=None if value is not None else "args=null")
    )
    assert f"must be a JSON object, not {kind}" in message


@pytest.mark.parametrize("path", JOB_ENDPOINTS)
@pytest.mark.parametrize("missing", ["name", "number", "jobid"])
def test_a_missing_job_key_is_400(server: Server, path: str, missing: str) -> None:
    args = {"name": "jarvice-kirby-1", "number": 1, "jobid": "1"}
    del args[missing]
    assert repr(missing) in error_of(server.post(path, args))


@pytest.mark.parametrize(
    "args, words",
    [
        ({"name": "a b", "number": 1, "jobid": "1"}, "Job name"),
        ({"name": ["x"], "number": 1, "jobid": "1"}, "Job name"),
        ({"name": "job-1", "number": "one", "jobid": "1"}, "Job number"),
        ({"name": "job-1", "number": 1, "jobid": "1; reboot"}, "not a valid job id"),
        ({"name": "job-1", "number": 1, "jobid": {"id": 1}}, "not a valid job id"),
    ],
)
def test_a_job_key_of_the_wrong_type_is_400(server: Server, args: dict[str, Any], words: str) -> None:
    for path in JOB_ENDPOINTS:
        assert words in error_of(server.post(path, args))


def test_qs_not_an_object_is_400(server: Server) -> None:
    assert "qs must be an object" in error_of(server.post("/request/pvcls", {"qs": ["path"]}))


def test_tail_lines_not_a_number_is_400(server: Server) -> None:
    assert "qs.lines must be an integer from 1" in error_of(
        server.post("/request/jarvice-a-1/1/1/tail", {"qs": {"lines": ["ten"]}})
    )


@pytest.mark.parametrize(
    "change, words",
    [
        ({"hpc_script": {"shell": "%%%"}}, "not valid base64"),
        ({"hpc_script": {"singularity": "ZWNobw=="}}, "no entry 'shell'"),
        ({"hpc_script": "ZWNobw=="}, "hpc_script must be an object"),
        ({"nodes": 0}, "nodes must be an integer"),
        ({"nodes": "many"}, "nodes must be an integer"),
        ({"name": "bad name"}, "Job name"),
    ],
)
def test_a_malformed_submission_is_400_and_submits_nothing(server: Server, change: dict[str, Any], words: str) -> None:
    before = (server.get("/running").json(), server.get("/queued").json())
    number = next(_numbers)
    args = {**submit_args(f"jarvice-kirby-{number}", number, legacy_template("sleep 30"), key="shell"), **change}
    assert words in error_of(server.post("/submit", args))
    assert (server.get("/running").json(), server.get("/queued").json()) == before


@pytest.mark.parametrize(
    "template, words",
    [
        (legacy_template("true", appdef=1), "appdef version 2 or newer"),
        (legacy_template("true", extra={"JOBOBJ_DEVICES": '["gpu=a100"]'}), "Unknown pseudo-device 'gpu'"),
        (legacy_template("true").replace("{DOWNSTREAM_PARAMETERS}\n", ""), "DOWNSTREAM_PARAMETERS"),
    ],
)
def test_a_refused_template_is_400_with_its_reason(server: Server, template: str, words: str) -> None:
    number = next(_numbers)
    answer = server.post("/submit", submit_args(f"jarvice-kirby-{number}", number, template, key="shell"))
    assert words in error_of(answer)


def test_extra_keys_are_ignored(server: Server) -> None:
    job = new_job(server, "true")
    answer = server.post("/runstatus", {**job, "rc": 0, "force": True, "nodes": 3, "future": {"x": 1}})
    assert answer.status == 200
    finished(server, job)


def test_an_unknown_path_is_a_json_404(server: Server) -> None:
    error_of(server.get("/no-such-endpoint"), 404)


def test_a_wrong_method_is_a_json_405(server: Server) -> None:
    error_of(server.get("/submit"), 405)
