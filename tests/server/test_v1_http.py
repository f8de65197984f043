"""``/v1`` on the real server (waitress) with the local connector: the life of a job, problems, listings."""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.server.live import Server, wait_for
from tests.v1client import V1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dssr-v1")
    env = {"JARVICE_LOCAL_MAX_JOBS": "3", "JARVICE_DSSR_MAX_FOLLOWERS": "2", "JARVICE_DSSR_FOLLOW_INTERVAL": "0.2"}
    server = Server(root / "state", env=env).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def api(server: Server) -> V1:
    return V1(server.url)


_names = iter(range(10**6))


def spec(command: str, **more: Any) -> dict[str, Any]:
    return {"name": f"v1-{os.getpid()}-{next(_names)}", "command": command, **more}


def ended(api: V1, location: str, timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(location).json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(done, timeout)


def test_a_job_lives_its_whole_life_through_v1(api: V1) -> None:
    body = spec("echo one; echo two; exit 3", number=7)
    created = api.post("/v1/jobs", body)
    assert created.status == 201, created.body
    job = created.json()
    location = created.headers["location"]
    assert location == f"/v1/jobs/{body['name']}:7:{job['jobid']}" and job["id"] == location.rsplit("/", 1)[1]
    again = api.post("/v1/jobs", body)
    assert again.status == 200 and again.json()["jobid"] == job["jobid"] and again.headers["location"] == location
    end = ended(api, location)
    assert (end["state"], end["rc"], end["exit_code"], end["scheduler_state"]) == ("failed", 1, 3, "FAILED")
    out = api.get(location + "/output")
    assert out.status == 200 and out.type.startswith("text/plain") and out.body == b"one\ntwo\n"
    assert api.get(location + "/output?lines=1").body == b"two\n"


def test_a_running_job_shows_its_nodes_and_is_terminated_by_delete(api: V1) -> None:
    location = api.post("/v1/jobs", spec("sleep 60")).headers["location"]
    running = wait_for(lambda: (job := api.get(location).json())["state"] == "running" and job)
    assert running["nodes"] and running["exit_code"] is None
    assert api.delete(location + "?force=true").status == 204
    assert ended(api, location)["state"] == "cancelled"


def test_a_held_job_waits_until_released_and_a_running_one_cannot_be_held(api: V1) -> None:
    location = api.post("/v1/jobs", spec("echo released", held=True)).headers["location"]
    time.sleep(0.5)
    assert api.get(location).json()["state"] == "queued"
    assert api.post(location + "/release").status == 204
    assert ended(api, location)["state"] == "completed"
    conflict = api.post(location + "/hold")
    assert conflict.status == 409 and "not queued" in conflict.problem["detail"]


def test_a_job_held_while_it_waits_for_a_slot_stays_queued_until_released(api: V1) -> None:
    busy = [api.post("/v1/jobs", spec("sleep 60")).headers["location"] for _ in range(3)]  # the 3 slots
    waiting = api.post("/v1/jobs", spec("echo ran")).headers["location"]
    assert api.get(waiting).json()["state"] == "queued"
    assert api.post(waiting + "/hold").status == 204
    for location in busy:
        assert api.delete(location + "?force=true").status == 204
    time.sleep(1.0)
    assert api.get(waiting).json()["state"] == "queued"
    assert api.post(waiting + "/release").status == 204
    assert ended(api, waiting)["state"] == "completed"


def test_the_list_is_filtered_and_paged_with_a_cursor_without_repeats(api: V1) -> None:
    prefix = f"page-{os.getpid()}-"
    locations = [
        api.post("/v1/jobs", {"name": f"{prefix}{i}", "command": "true", "held": True}).headers["location"]
        for i in range(5)
    ]
    seen: list[str] = []
    path = f"/v1/jobs?name={prefix}&limit=2"
    while True:
        page = api.get(path).json()
        assert len(page["jobs"]) <= 2
        seen += [job["id"] for job in page["jobs"]]
        if page["next"] is None:
            break
        path = f"/v1/jobs?name={prefix}&limit=2&cursor={page['next']}"
    assert sorted(seen) == sorted(loc.rsplit("/", 1)[1] for loc in locations) and len(set(seen)) == 5
    assert api.get(f"/v1/jobs?name={prefix}&state=running").json()["jobs"] == []
    assert len(api.get(f"/v1/jobs?name={prefix}&state=queued").json()["jobs"]) == 5
    for location in locations:
        assert api.delete(location).status == 204


def test_errors_are_problem_details(api: V1) -> None:
    unknown = api.get("/v1/jobs/nobody:0:999999")
    assert unknown.status == 404 and unknown.problem["type"].endswith("not-found")
    assert api.get("/v1/jobs/not-an-id").problem["status"] == 404
    invalid = api.post("/v1/jobs", spec("true", nodes="two"))
    assert invalid.status == 422 and invalid.problem["field"] == "nodes" and "nodes" in invalid.problem["detail"]
    assert api.post("/v1/jobs", {"name": "x", "command": "true", "colour": "red"}).problem["field"] == "colour"
    assert api.post("/v1/jobs", {"command": "true"}).problem["field"] == "name"
    assert api.post("/v1/jobs", spec("true", nodes=0)).problem["field"] == "nodes"
    assert api.post("/v1/jobs", spec("true", walltime="1; reboot")).problem["field"] == "walltime"
    assert api.get("/v1/jobs?state=sleeping").problem["status"] == 400
    assert api.get("/v1/jobs?cursor=%%%").problem["status"] == 400
    assert api.get("/v1/nothing").problem["status"] == 404
    not_allowed = api.call("PUT", "/v1/jobs")
    assert not_allowed.problem["status"] == 405 and set(not_allowed.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert api.call("PATCH", "/v1/jobs/x:0:1/hold").headers["allow"].split(", ").count("POST") == 1
    legacy = api.call("GET", "/submit")  # the legacy API's 405 says its methods too
    assert legacy.status == 405 and "POST" in legacy.headers["allow"]


def test_a_name_that_exists_with_another_spec_is_a_conflict_naming_what_differs(api: V1) -> None:
    body = spec("sleep 30", held=True)
    created = api.post("/v1/jobs", body)
    location = created.headers["location"]
    assert api.post("/v1/jobs", body).status == 200
    # held is what to do with the job, not the job: asking again without it is the same spec (as /submit)
    conflict = api.post("/v1/jobs", {**body, "command": "sleep 31", "cores": 2, "held": True})
    assert conflict.status == 409 and conflict.type == "application/problem+json"
    assert conflict.problem["type"].endswith("conflict") and conflict.problem["fields"] == ["cores", "command"]
    assert created.json()["id"] in conflict.problem["detail"] and "cores, command differ" in conflict.problem["detail"]
    assert api.post("/v1/jobs", {**body, "environment": {"A": "1"}}).problem["fields"] == ["environment"]
    assert api.get(location).json()["state"] == "queued"  # the conflict changed nothing (still held)
    again = api.post("/v1/jobs", body)
    assert again.status == 200 and again.headers["location"] == location
    assert api.delete(location).status == 204


def test_a_job_tells_when_it_was_submitted_started_and_ended_in_utc(api: V1) -> None:
    before = time.time()
    location = api.post("/v1/jobs", spec("sleep 1", held=True)).headers["location"]
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    queued = api.get(location).json()
    assert iso.match(queued["submitted"]) and (queued["started"], queued["ended"]) == (None, None)
    assert abs(_seconds(queued["submitted"]) - before) < 5
    listed = [j for j in api.get("/v1/jobs?state=queued").json()["jobs"] if j["id"] == queued["id"]]
    assert listed[0]["submitted"] == queued["submitted"]
    assert api.post(location + "/release").status == 204
    running = wait_for(lambda: (job := api.get(location).json())["state"] == "running" and job)
    assert iso.match(running["started"]) and running["ended"] is None
    end = ended(api, location)
    assert end["submitted"] == queued["submitted"] and end["started"] == running["started"]
    assert _seconds(end["submitted"]) <= _seconds(end["started"]) < _seconds(end["ended"]) <= time.time() + 1


def _seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_the_cluster_is_this_host_as_one_node(api: V1) -> None:
    cluster = api.get("/v1/cluster").json()
    (node,) = cluster["nodes"]
    assert node["cpus"]["total"] == os.cpu_count() and 0 <= node["cpus"]["free"] <= node["cpus"]["total"]
    assert cluster["partitions"][0]["nodes"] == [node["name"]]
    assert cluster["totals"]["memory_mb"]["total"] == node["memory_mb"]["total"] > 0


def test_a_follower_gets_every_line_once_in_order_and_the_stream_closes_when_the_job_ends(api: V1) -> None:
    location = api.post("/v1/jobs", spec("for i in $(seq 1 20); do echo line-$i; sleep 0.1; done")).headers["location"]
    text = b"".join(api.stream(location + "/output?follow=true")).decode()
    assert text.splitlines() == [f"line-{i}" for i in range(1, 21)]
    assert api.get(location).json()["state"] == "completed"
    # a follower of an ended job gets the whole output, then the end
    assert b"".join(api.stream(location + "/output?follow=true")).decode() == text
    assert b"".join(api.stream(location + "/output?follow=true&lines=2")).decode() == "line-19\nline-20\n"


def test_followers_beyond_the_bound_are_answered_503_with_retry_after(server: Server, api: V1) -> None:
    location = api.post("/v1/jobs", spec("sleep 5; echo done")).headers["location"]
    streams = [api.stream(location + "/output?follow=true") for _ in range(2)]
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda s=s: results.append(b"".join(s))) for s in streams]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    busy = api.get(location + "/output?follow=true")
    assert busy.status == 503 and busy.headers["retry-after"].isdigit() and busy.problem["type"].endswith("busy")
    again = api.get(location + "/output?follow=true")
    assert again.status == 503
    for thread in threads:
        thread.join(30)
    assert results == [b"done\n", b"done\n"]
    # a bound kept on purpose is no error: one warning for both refusals, nothing at ERROR
    refusals = [line for line in server.log().splitlines() if "streams at most" in line]
    assert len(refusals) == 1 and "WARNING" in refusals[0] and "ERROR" not in refusals[0], refusals


def test_the_legacy_api_and_v1_agree_on_a_job(server: Server, api: V1) -> None:
    body = spec("sleep 30", number=3)
    job = api.post("/v1/jobs", body).json()
    ref = {"name": body["name"], "number": 3, "jobid": job["jobid"]}
    location = f"/v1/jobs/{job['id']}"
    wait_for(lambda: api.get(location).json()["state"] == "running")
    nodes, elapsed, prefix, _ = server.post("/runstatus", ref).json()
    mine = api.get(location).json()
    assert nodes == mine["nodes"] and prefix == f"{body['name']}/3/{job['jobid']}"
    assert [body["name"], job["jobid"]] in server.get("/running").json()
    assert job["id"] in [j["id"] for j in api.get("/v1/jobs?state=running").json()["jobs"]]
    assert server.post("/terminate", ref).json() is True
    end = ended(api, location)
    rc, _, (_, line) = server.post("/exitstatus", ref).json()
    assert rc == end["rc"] == -15 and end["scheduler_state"] in line


def test_with_the_shared_token_v1_wants_it_and_its_document_does_not(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", env={"JARVICE_DSSR_AUTH_TOKEN": "s3cret"}).start()
    try:
        refused = V1(server.url).get("/v1/jobs")
        assert refused.status == 401 and refused.headers["www-authenticate"] == "Bearer" and refused.problem
        assert V1(server.url, "wrong").get("/v1/cluster").status == 401
        assert V1(server.url, "s3cret").get("/v1/jobs").json() == {"jobs": [], "next": None}
        assert V1(server.url).get("/v1/openapi.json").json()["openapi"] == "3.1.0"
    finally:
        server.stop()
