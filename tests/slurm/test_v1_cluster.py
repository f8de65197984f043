"""``/v1`` on the Slurm connector against the real test cluster (over SSH, and over slurmrestd).

Two users (kirby and mario) with identity tokens from the test identity
provider, an administrator's token (the claim ``dssr_admin``), the portal's
shared token; jobs run with the ``shell`` executor as the mapped users.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import pytest

from dssr_core.testing.contract import unique_name, wait_for
from tests.cluster import Cluster
from tests.helpers import each_operation
from tests.slurm.cluster_support import Server, serve, slurm_env
from tests.slurm.follow_support import follow_check
from tests.slurm_rest.test_backend_cluster import rest_env
from tests.v1client import V1

pytestmark = pytest.mark.cluster
SHARED = "portal-s3cret"
V1_ENV = {
    "JARVICE_DSSR_ADMIN_CLAIM": "dssr_admin",
    "JARVICE_DSSR_AUTH_TOKEN": SHARED,
    "WAITRESS_THREADS": "16",
    "JARVICE_DSSR_MAX_FOLLOWERS": "12",
    "JARVICE_DSSR_FOLLOW_INTERVAL": "0.5",
}


@pytest.fixture(scope="module", params=["cli", "http"])
def server(
    request: pytest.FixtureRequest, slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"slurm-v1-{request.param}")
    if request.param == "cli":
        env = slurm_env(slurm_cluster, tmp, **V1_ENV)
    else:
        env = rest_env(slurm_cluster, tmp, "v0.0.38", "true", **V1_ENV)
    for server in serve(env):
        server.interface = request.param  # type: ignore[attr-defined]  # the fixture tags the server with its interface
        yield server


#: where the life of a job (and the 409 and times that the connector reads back) is checked: (cluster
#: fixture, interface: ``cli`` for squeue/sacct/sbatch over SSH, else the slurmrestd API version)
LIVES = [
    pytest.param(("slurm_cluster", "cli"), id="22.05-ssh"),
    pytest.param(("slurm_cluster", "v0.0.38"), id="22.05-rest-v0.0.38"),
    pytest.param(("slurm2411_cluster", "cli"), id="24.11-ssh"),
    pytest.param(("slurm2411_cluster", "v0.0.40"), id="24.11-rest-v0.0.40"),
    pytest.param(("slurm2411_cluster", "v0.0.42"), id="24.11-rest-v0.0.42"),
]


@pytest.fixture(scope="module", params=LIVES)
def life(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Cluster]]:
    fixture, interface = request.param
    cluster: Cluster = request.getfixturevalue(fixture)
    tmp = tmp_path_factory.mktemp(f"slurm-v1-life-{interface}")
    if interface == "cli":
        env = slurm_env(cluster, tmp, **V1_ENV)
    else:
        env = rest_env(cluster, tmp, interface, "true", **V1_ENV)
    for server in serve(env):
        server.interface = interface  # type: ignore[attr-defined]  # the tests read which interface this server is on
        yield server, cluster


@pytest.fixture(scope="module")
def life_user(life: tuple[Server, Cluster]) -> Callable[..., V1]:
    server, cluster = life

    def make(user: str, **claims: Any) -> V1:
        return V1(server.url, cluster.idp.mint(email=f"{user}@example.com", user=user, audience="jarvice", **claims))

    return make


@pytest.fixture(scope="module")
def as_user(slurm_cluster: Cluster, server: Server) -> Callable[..., V1]:
    def make(user: str, **claims: Any) -> V1:
        return V1(
            server.url, slurm_cluster.idp.mint(email=f"{user}@example.com", user=user, audience="jarvice", **claims)
        )

    return make


def spec(command: str, **more: Any) -> dict[str, Any]:
    return {"name": unique_name("v1"), "command": command, "exclusive": False, **more}


def ended(api: V1, location: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        reply = api.get(location)
        job: dict[str, Any] = reply.json() if reply.status == 200 else {"state": "?"}
        return job if job["state"] not in ("queued", "running", "?") else None

    return wait_for(f"{location} to end", done, timeout)


def test_a_job_lives_its_whole_life_through_v1_only(life: tuple[Server, Cluster], life_user: Callable[..., V1]) -> None:
    server, kirby = life[0], life_user("kirby")
    body = spec("echo one; sleep 2; echo two; exit 3", number=5)
    created = kirby.post("/v1/jobs", body)
    assert created.status == 201, created.body
    location = created.headers["location"]
    again = kirby.post("/v1/jobs", body)
    assert again.status == 200 and again.headers["location"] == location
    job = kirby.get(location).json()
    assert job["owner"] == "kirby" and job["state"] in ("queued", "running")
    streamed = b"".join(kirby.stream(location + "/output?follow=true")).decode()
    assert streamed.startswith("one\ntwo\n"), streamed  # then srun's word on the exit code
    end = ended(kirby, location)
    if server.interface != "v0.0.38":  # type: ignore[attr-defined]  # tagged by the fixture
        # the exit code comes from accounting, which may take a moment to have the job's end (a job this short
        # ends before slurmdbd has its start, whose record may stay a nameless placeholder until then: over 30 s
        # once on 24.11 with the whole module running on a loaded machine)
        end = wait_for(
            "the exit code", lambda: (job := kirby.get(location).json())["exit_code"] is not None and job, 90
        )
        assert end["exit_code"] == 3
    else:  # slurmrestd 22.05 records every job's exit code as 0: none is told rather than a wrong one
        assert end["exit_code"] is None
    assert (end["state"], end["rc"], end["owner"]) == ("failed", 1, "kirby")
    assert kirby.get(location + "/output").body.decode() == streamed  # what was followed is the whole output
    assert end["submitted"] and end["started"] and end["ended"] and end["started"] <= end["ended"]


def test_hold_release_and_delete_act_on_the_cluster(as_user: Callable[..., V1]) -> None:
    kirby = as_user("kirby")
    held = kirby.post("/v1/jobs", spec("echo released", held=True)).headers["location"]
    queued = kirby.get(held).json()
    assert queued["state"] == "queued" and queued["reason"] and "Held" in queued["reason"]
    assert kirby.post(held + "/hold").status == 204
    assert kirby.get(held).json()["state"] == "queued"
    assert kirby.post(held + "/release").status == 204
    assert ended(kirby, held)["state"] == "completed"
    running = kirby.post("/v1/jobs", spec("sleep 120")).headers["location"]
    wait_for("the job to run", lambda: kirby.get(running).json()["state"] == "running", 60)
    assert kirby.post(running + "/hold").status == 409
    assert kirby.delete(running + "?force=true").status == 204
    assert ended(kirby, running)["state"] == "cancelled"


def test_a_name_that_exists_with_another_spec_is_a_conflict_naming_what_differs(life_user: Callable[..., V1]) -> None:
    kirby = life_user("kirby")
    body = spec("sleep 30", held=True)
    created = kirby.post("/v1/jobs", body)
    location = created.headers["location"]
    assert created.status == 201 and kirby.post("/v1/jobs", body).status == 200
    conflict = kirby.post("/v1/jobs", {**body, "command": "sleep 31", "nodes": 2})
    assert conflict.status == 409 and conflict.problem["fields"] == ["nodes", "command"], conflict.body
    assert created.json()["id"] in conflict.problem["detail"]
    assert kirby.post("/v1/jobs", {**body, "walltime": "00:10:00"}).problem["fields"] == ["walltime"]
    job = kirby.get(location).json()
    assert job["state"] == "queued" and "Held" in job["reason"]  # the conflicts left the job as it was
    assert kirby.post("/v1/jobs", body).headers["location"] == location
    assert kirby.delete(location + "?force=true").status == 204


def test_a_job_tells_when_it_was_submitted_started_and_ended_in_utc(life_user: Callable[..., V1]) -> None:
    kirby = life_user("kirby")
    before = time.time()
    location = kirby.post("/v1/jobs", spec("sleep 2", held=True)).headers["location"]
    queued = kirby.get(location).json()
    assert (queued["started"], queued["ended"]) == (None, None) and abs(_seconds(queued["submitted"]) - before) < 10
    listed = V1(kirby.url, SHARED).get(f"/v1/jobs?name={queued['name']}").json()["jobs"]
    assert [job["submitted"] for job in listed] == [queued["submitted"]]
    assert kirby.post(location + "/release").status == 204
    running = wait_for("the job to run", lambda: (job := kirby.get(location).json())["state"] == "running" and job, 60)
    assert running["ended"] is None and _seconds(queued["submitted"]) <= _seconds(running["started"])
    # an ended job still in slurmctld: its times from squeue (once it has left, from sacct: test_parsing.py)
    end = ended(kirby, location)
    assert end["submitted"] == queued["submitted"] and end["started"] == running["started"]
    assert _seconds(end["started"]) < _seconds(end["ended"]) <= time.time() + 2


def _seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_the_legacy_api_and_v1_see_the_same_job_alike(server: Server, as_user: Callable[..., V1]) -> None:
    kirby = as_user("kirby")
    body = spec("sleep 5; echo done", number=9)
    job = kirby.post("/v1/jobs", body).json()
    location = f"/v1/jobs/{job['id']}"
    ref = {"name": body["name"], "number": 9, "jobid": job["jobid"]}
    wait_for("the job to run", lambda: kirby.get(location).json()["state"] == "running", 60)
    legacy = _legacy(server.url, "/runstatus", ref)
    mine = kirby.get(location).json()
    assert legacy[0] == mine["nodes"] and legacy[2] == f"{body['name']}/9/{job['jobid']}"
    assert [body["name"], job["jobid"]] in _legacy(server.url, "/running")
    listed = V1(server.url, SHARED).get(f"/v1/jobs?state=running&name={body['name']}").json()["jobs"]
    # squeue keeps no job number: the listing's id says 0, and names the same job as the id POST gave
    assert [(j["name"], j["jobid"], j["nodes"]) for j in listed] == [(body["name"], job["jobid"], mine["nodes"])]
    assert kirby.get(f"/v1/jobs/{listed[0]['id']}").json()["jobid"] == job["jobid"]
    end = ended(kirby, location)
    rc, _, (output, line) = wait_for("exitstatus", lambda: _legacy(server.url, "/exitstatus", ref, ok_only=True), 60)
    assert rc == end["rc"] == 0 and end["scheduler_state"] in line and "done" in output


def test_no_user_reads_follows_cancels_or_holds_another_users_job(server: Server, as_user: Callable[..., V1]) -> None:
    kirby, mario = as_user("kirby"), as_user("mario")
    mine = kirby.post("/v1/jobs", spec("sleep 60")).headers["location"]
    held = kirby.post("/v1/jobs", spec("true", held=True)).headers["location"]
    wait_for("the job to run", lambda: kirby.get(mine).json()["state"] == "running", 60)
    for reply in (
        mario.get(mine),
        mario.get(mine + "/output"),
        mario.get(mine + "/output?follow=true"),
        mario.delete(mine + "?force=true"),
        mario.post(held + "/release"),
        mario.post(held + "/hold"),
        mario.delete(held),
    ):
        assert reply.status == 404 and reply.problem["type"].endswith("not-found")
    assert kirby.get(mine).json()["state"] == "running" and kirby.get(held).json()["state"] == "queued"
    theirs = {job["id"] for job in mario.get("/v1/jobs").json()["jobs"]}
    assert not theirs & {mine.rsplit("/", 1)[1], held.rsplit("/", 1)[1]}
    assert all(job["owner"] == "mario" for job in mario.get("/v1/jobs").json()["jobs"])
    assert mario.get("/v1/jobs?user=kirby").json()["jobs"] == []
    # the administrator's token and the portal's shared token see and act on every job
    admin = as_user("mario", dssr_admin=True)
    assert admin.get(mine).json()["owner"] == "kirby"
    assert {j["owner"] for j in V1(server.url, SHARED).get("/v1/jobs?user=kirby").json()["jobs"]} == {"kirby"}
    assert admin.delete(mine + "?force=true").status == 204
    assert V1(server.url, SHARED).delete(held).status == 204
    assert ended(kirby, mine)["state"] == "cancelled"


def test_tokens_that_prove_nothing_are_refused(server: Server, slurm_cluster: Cluster) -> None:
    assert V1(server.url).get("/v1/jobs").status == 401
    assert V1(server.url, "not-a-token").get("/v1/jobs").problem["status"] == 401
    expired = slurm_cluster.idp.mint(email="kirby@example.com", audience="jarvice", lifespan=-3600)
    assert V1(server.url, expired).get("/v1/jobs").problem["status"] == 401
    stranger = V1(server.url, slurm_cluster.idp.mint(email="nobody@example.com", audience="jarvice", user="Not A User"))
    assert stranger.get("/v1/jobs").problem["status"] == 403


def test_the_cluster_lists_its_partition_and_nodes_with_their_resources(server: Server, slurm_cluster: Cluster) -> None:
    cluster = V1(server.url, SHARED).get("/v1/cluster").json()
    assert sorted(node["name"] for node in cluster["nodes"]) == sorted(slurm_cluster.nodes)
    partition = next(p for p in cluster["partitions"] if p["name"] == slurm_cluster.partition)
    assert sorted(partition["nodes"]) == sorted(slurm_cluster.nodes)
    for node in cluster["nodes"]:
        assert node["cpus"]["total"] > 0 and 0 <= node["cpus"]["free"] <= node["cpus"]["total"]
        assert node["gpus"]["total"] == slurm_cluster.gpus_per_node and node["memory_mb"]["total"] > 0
    assert cluster["totals"]["cpus"]["total"] == sum(node["cpus"]["total"] for node in cluster["nodes"])


def test_followers_of_running_jobs_get_every_line_once_in_order_with_threads_and_ssh_channels_bounded(
    server: Server, as_user: Callable[..., V1]
) -> None:
    """benchmarks/v1_follow.py's check (50 followers x 10 jobs x 60 s), smaller: 12 followers (the bound of
    V1_ENV) of 4 jobs for 10 s; the bounds it asserts are follow_support's."""
    report = follow_check(
        server, as_user("kirby"), followers=12, jobs=4, seconds=10, interval=0.5, tag=unique_name("follow")
    )
    print("\n".join(report.lines()))
    assert not report.wrong and report.closed == 12, report.lines()
    assert report.ended_follower_ok and report.ended_follower_seconds < 5, report.lines()
    assert report.busy_status == 503 and report.busy_retry_after, report.lines()
    assert report.threads_peak <= report.threads_before, report.lines()
    assert report.ssh_peak <= report.ssh_bound and report.reads <= report.reads_bound, report.lines()
    assert report.ok


def _legacy(url: str, path: str, args: Any = None, ok_only: bool = False) -> Any:
    data = None if args is None else urllib.parse.urlencode({"args": json.dumps(args)}).encode()
    req = urllib.request.Request(url + path, data=data, headers={"Authorization": f"Bearer {SHARED}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError:
        if ok_only:
            return None
        raise


def test_every_v1_operation_fuzzed_on_the_cluster_answers_as_documented_and_never_5xx(
    server: Server, as_user: Callable[..., V1]
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    from tests.server.test_v1_openapi import document

    kirby = as_user("kirby")
    target = kirby.post("/v1/jobs", spec("true", held=True)).json()
    before = {job["jobid"] for job in kirby.get("/v1/jobs?limit=1000").json()["jobs"]}
    operations = each_operation(schemathesis.openapi.from_dict(document()))
    headers = {"Authorization": f"Bearer {kirby.token}"}
    try:
        for operation in operations:

            @settings(
                max_examples=12, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )
            @given(operation.as_strategy())
            def call(case) -> None:
                if isinstance(case.body, dict):
                    case.body["held"] = True  # a generated command line never runs
                if case.path_parameters and "job" in case.path_parameters and len(str(case.path_parameters)) % 2:
                    case.path_parameters["job"] = target["id"]
                if case.query and case.query.get("follow") in (True, "true"):
                    case.query["follow"] = "false"
                # a job the fuzzer just cancelled may be between slurmctld and accounting for a moment:
                # that is the documented 503 with Retry-After, the one 5xx allowed here
                response = case.call(base_url=server.url, headers=headers)
                found = {k.lower(): v for k, v in response.headers.items()}
                if response.status_code == 503 and "ask again" in response.text and "retry-after" in found:
                    return
                case.validate_response(response, excluded_checks=[positive_data_acceptance])
                assert response.status_code < 500, response.text
                if response.status_code >= 400:
                    kind = {k.lower(): v for k, v in response.headers.items()}["content-type"]
                    assert (kind if isinstance(kind, str) else kind[0]) == "application/problem+json"

            call()
    finally:
        for job in kirby.get("/v1/jobs?limit=1000").json()["jobs"]:
            if job["jobid"] not in before or job["jobid"] == target["jobid"]:
                kirby.delete(f"/v1/jobs/{job['id']}?force=true")
