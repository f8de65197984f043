"""/ready and /metrics of a server on the real 22.05 cluster, scraped while jobs run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from dssr_core.testing.contract import unique_name, wait_for
from tests.cluster import Cluster
from tests.helpers import legacy_template, submit_args
from tests.server.test_operations import sample
from tests.slurm.cluster_support import Server, serve, slurm_env
from tests.slurm.test_http_cluster import Client

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def server(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(slurm_env(slurm_cluster, tmp_path_factory.mktemp("slurm-ops")))


def test_metrics_scraped_during_a_real_run(slurm_cluster: Cluster, server: Server) -> None:
    client = Client(server.url)
    name = unique_name("ops")
    token = slurm_cluster.idp.mint(email="kirby@example.com", audience="jarvice")
    args = submit_args(name, 3, legacy_template("sleep 4; echo done"), key="shell", bearer=token)
    status, body = client.post("/submit", args)
    assert status == 200, body
    jobid = body[0]
    status, again = client.post("/submit", args)
    assert (status, again[0]) == (200, jobid)
    wait_for("the job to run", lambda: [name, jobid] in client.get("/running")[1], 60)

    status, text = client.get("/metrics")
    assert status == 200
    assert (sample(text, "dssr_jobs", state="running") or 0) >= 1
    assert sample(text, "dssr_submissions_total", result="new") == 1
    assert sample(text, "dssr_submissions_total", result="existing") == 1
    assert (sample(text, "dssr_cluster_calls_total", kind="squeue", outcome="ok") or 0) >= 1
    assert (sample(text, "dssr_cluster_calls_total", kind="sbatch", outcome="ok") or 0) >= 1
    assert (sample(text, "dssr_cluster_call_duration_seconds_count", kind="squeue") or 0) >= 1
    assert (sample(text, "dssr_snapshot_refreshes_total", outcome="ok") or 0) >= 1
    assert (sample(text, "dssr_ssh_connections_opened_total") or 0) >= 2  # the service user and kirby
    age = sample(text, "dssr_snapshot_age_seconds")
    assert age is not None and 0 <= age < 30
    assert sample(text, "dssr_cluster_contact_ok") == 1

    status, refused = client.post(
        "/submit",
        submit_args(
            unique_name("ops"),
            4,
            legacy_template("true"),
            key="shell",
            bearer=slurm_cluster.idp.mint(email="kirby@example.com", audience="another"),
        ),
    )
    assert status == 400
    wait_for(
        "the job to end", lambda: client.post("/exitstatus", {"name": name, "number": 3, "jobid": jobid})[0] == 200, 60
    )
    text = client.get("/metrics")[1]
    assert (sample(text, "dssr_tokens_refused_total", reason="audience") or 0) >= 1
    assert (sample(text, "dssr_cluster_calls_total", kind="tail", outcome="ok") or 0) >= 1  # the job's output
    assert (sample(text, "dssr_http_requests_total", endpoint="/exitstatus", status="200") or 0) == 1


def test_ready_follows_the_last_contact_without_calling_the_cluster(server: Server) -> None:
    client = Client(server.url)
    client.get("/running")
    status, reason = client.get("/ready")
    assert status == 200 and reason["status"] == "OK"
    calls = sample(client.get("/metrics")[1], "dssr_cluster_calls_total", kind="squeue", outcome="ok")
    for _ in range(5):
        assert client.get("/ready")[0] == 200
    assert sample(client.get("/metrics")[1], "dssr_cluster_calls_total", kind="squeue", outcome="ok") == calls


def test_not_ready_before_any_contact_and_while_the_cluster_is_unreachable(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    env = slurm_env(slurm_cluster, tmp_path, JARVICE_SLURM_CLUSTER_PORT="1", JARVICE_DSSR_READY_MAX_AGE="3")
    for unreachable in serve(env):
        client = Client(unreachable.url)
        status, reason = client.get("/ready")
        assert (status, reason["status"]) == (503, "BAD")
        assert reason["reason"] == "no contact with the cluster yet"
        unreachable.downstream.start_heartbeat(1)
        time.sleep(1.5)
        status, reason = client.get("/ready")
        assert status == 503 and "127.0.0.1:1" in reason["reason"], reason
        assert sample(client.get("/metrics")[1], "dssr_cluster_contact_ok") == 0


def test_ready_turns_bad_when_the_last_good_contact_is_too_old(slurm_cluster: Cluster, tmp_path: Path) -> None:
    for server in serve(slurm_env(slurm_cluster, tmp_path, JARVICE_DSSR_READY_MAX_AGE="2")):
        client = Client(server.url)
        client.get("/running")
        assert client.get("/ready")[0] == 200
        time.sleep(2.5)
        status, reason = client.get("/ready")
        assert status == 503 and "no contact with the cluster for" in reason["reason"]
        server.downstream.start_heartbeat(0.5)  # what dssr-server runs: it brings readiness back
        wait_for("ready again", lambda: client.get("/ready")[0] == 200, 10)  # noqa: B023 - called before the loop moves on


def test_slurmrestd_calls_are_counted_by_route(slurm_cluster: Cluster, tmp_path: Path) -> None:
    from tests.slurm_rest.test_backend_cluster import rest_env

    env = rest_env(slurm_cluster, tmp_path, "v0.0.38", "false")
    for server in serve(env):
        client = Client(server.url)
        assert client.get("/running")[0] == 200
        text = client.get("/metrics")[1]
        assert (
            sample(text, "dssr_cluster_calls_total", kind="slurmrestd GET /slurm/v0.0.38/jobs", outcome="ok") or 0
        ) >= 1
        assert (
            sample(text, "dssr_cluster_call_duration_seconds_count", kind="slurmrestd GET /slurm/v0.0.38/jobs") or 0
        ) >= 1


def test_a_dropped_ssh_connection_is_reopened_and_counted_as_a_reconnect(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    import socket

    for server in serve(slurm_env(slurm_cluster, tmp_path)):
        client = Client(server.url)
        assert client.get("/running")[0] == 200
        pool = server.downstream.connector.pool  # type: ignore[attr-defined]  # the Slurm connector's SSH pool
        (transport,) = pool._transports.values()
        transport.sock.shutdown(socket.SHUT_RDWR)  # the network drops the connection under it
        wait_for("the connection to die", lambda: not transport.is_active(), 10)  # noqa: B023 - called before the loop moves on
        time.sleep(1)  # past JARVICE_SLURM_STATUS_TTL: the next poll runs squeue again
        status, _ = client.get("/queued")
        assert status == 200
        text = client.get("/metrics")[1]
        assert sample(text, "dssr_ssh_reconnects_total") == 1
        assert sample(text, "dssr_ssh_connections_opened_total") == 2


def test_an_idle_dssr_server_process_becomes_ready_and_stays_ready_without_any_poll(
    slurm_cluster: Cluster, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from tests.server.live import free_port

    port = free_port()
    env = {
        **os.environ,
        **slurm_env(
            slurm_cluster,
            tmp_path,
            JARVICE_DSSR_READY_MAX_AGE="3",
            WAITRESS_BIND_ADDRESS="127.0.0.1",
            WAITRESS_PORT=str(port),
            JARVICE_DSSR_LOG_FORMAT="json",
        ),
    }
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "dssr_server"], env=env, stdout=out, stderr=subprocess.STDOUT)

    def ready() -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return None

    try:
        wait_for("the server to become ready by itself", lambda: ready() == 200, 30)
        time.sleep(5)  # longer than JARVICE_DSSR_READY_MAX_AGE: only the heartbeat keeps it fresh
        assert ready() == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any("listening on" in entry["message"] for entry in lines)
    assert not [entry for entry in lines if entry["level"] in ("ERROR", "CRITICAL")]
