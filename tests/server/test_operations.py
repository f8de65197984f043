"""What a site's probes, scraper and log collector see: /ready, /metrics, X-Request-Id, JSON logs.

The real ``dssr-server`` process on the local connector (the Slurm connector's
figures are scraped on the real cluster in tests/slurm/test_operations_cluster.py).
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import legacy_template, submit_args
from tests.server.live import Server, wait_for

TOKEN = "s3cret-upstream-token"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition (None when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match[1] != name:
            continue
        got = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
        if got == wanted:
            return float(match[3])
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dssr-ops")
    live = Server(root / "state", env={"JARVICE_DSSR_LOG_FORMAT": "json", "JARVICE_LOCAL_KILL_GRACE": "1"}).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dssr-ops-token")
    live = Server(root / "state", env={"JARVICE_DSSR_AUTH_TOKEN": TOKEN}).start()
    yield live
    live.stop()


def test_ready_says_ok_for_a_connector_that_does_not_track_its_cluster_contact(server: Server) -> None:
    answer = server.get("/ready")
    assert answer.status == 200
    assert answer.json()["status"] == "OK"
    assert "does not report" in answer.json()["reason"]


def test_metrics_count_requests_submissions_and_jobs_by_state(server: Server) -> None:
    name = "jarvice-ops-1"
    args = submit_args(name, 1, legacy_template("sleep 30"), key="shell")
    first = server.post("/submit", args)
    again = server.post("/submit", args)
    assert first.status == again.status == 200
    assert first.json()[0] == again.json()[0]
    wait_for(lambda: [name, first.json()[0]] in server.get("/running").json(), 20)
    server.get("/queued")

    answer = server.get("/metrics")
    assert answer.status == 200
    assert answer.content_type.startswith("text/plain")
    text = answer.text
    assert sample(text, "dssr_submissions_total", result="new") == 1
    assert sample(text, "dssr_submissions_total", result="existing") == 1
    assert sample(text, "dssr_http_requests_total", endpoint="/submit", status="200") == 2
    assert (sample(text, "dssr_http_request_duration_seconds_count", endpoint="/running") or 0) >= 1
    assert sample(text, "dssr_jobs", state="running") == 1
    assert sample(text, "dssr_jobs", state="queued") == 0
    assert sample(text, "dssr_snapshot_age_seconds") == -1  # the local connector has no cluster to contact
    server.post("/terminate", {"name": name, "number": 1, "jobid": first.json()[0], "force": True})


def test_unknown_paths_share_one_metrics_label(server: Server) -> None:
    assert server.get("/no/such/path/1").status == 404
    assert server.get("/no/such/path/2").status == 404
    text = server.get("/metrics").text
    assert (sample(text, "dssr_http_requests_total", endpoint="unmatched", status="404") or 0) >= 2
    assert "/no/such/path" not in text


def test_every_answer_carries_a_request_id_and_keeps_a_plain_one_given_by_a_proxy(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/live")
    first = conn.getresponse()
    first.read()
    conn.request("GET", "/live", headers={"X-Request-Id": "proxy-42.abc"})
    given = conn.getresponse()
    given.read()
    conn.request("GET", "/live", headers={"X-Request-Id": "bad id\twith spaces"})
    odd = conn.getresponse()
    odd.read()
    conn.close()
    assert re.fullmatch(r"[0-9a-f]{32}", first.getheader("X-Request-Id") or "")
    assert given.getheader("X-Request-Id") == "proxy-42.abc"
    assert re.fullmatch(r"[0-9a-f]{32}", odd.getheader("X-Request-Id") or "")


def test_json_logs_are_one_object_per_line_with_the_request_id(server: Server) -> None:
    answer = server.post(
        "/runstatus", {"name": "x y", "number": 1, "jobid": "1"}, headers={"X-Request-Id": "trace-runstatus-1"}
    )
    assert answer.status == 400

    def logged() -> list[dict[str, object]] | None:
        entries = [json.loads(line) for line in server.log().splitlines() if line.strip()]
        mine = [e for e in entries if e.get("request_id") == "trace-runstatus-1"]
        return mine or None

    mine = wait_for(logged, 10)
    assert all(isinstance(json.loads(line), dict) for line in server.log().splitlines() if line.strip())
    access = [e for e in mine if e["logger"] == "dssr_server.access"]
    assert access and access[0]["status"] == 400 and access[0]["path"] == "/runstatus"
    assert any("refused" in str(e["message"]) for e in mine)
    assert {"time", "level", "logger", "message"} <= set(mine[0])


def test_metrics_need_the_upstream_token_when_one_is_set_and_refusals_are_counted(guarded: Server) -> None:
    assert guarded.get("/metrics").status == 401
    assert guarded.get("/ready").status == 200  # a probe carries no secret
    scraped = guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status == 200
    assert (sample(scraped.text, "dssr_tokens_refused_total", reason="upstream") or 0) >= 1
    assert TOKEN not in scraped.text


def test_default_logs_stay_text(guarded: Server) -> None:
    guarded.get("/live")
    lines = [line for line in guarded.log().splitlines() if line.strip()]
    assert lines and all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ", line) for line in lines)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("JARVICE_DSSR_LOG_FORMAT", "xml"),
        ("JARVICE_DSSR_READY_MAX_AGE", "soon"),
    ],
)
def test_a_bad_operations_setting_stops_start_up_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dssr_server", "--connector", "local", "--executor", "shell", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "JARVICE_LOCAL_STATE_DIR": str(tmp_path), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert variable in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_metrics_table_of_the_operations_page_lists_every_metric_served() -> None:
    from dssr_server.metrics import PrometheusRecorder

    page = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(dssr_[a-z_]+)` \|", page, re.M))
    served = set()
    for family in PrometheusRecorder().registry.collect():
        served.add(family.name + ("_total" if family.type == "counter" else ""))
    assert documented == served


def test_metrics_name_the_version_serving(server: Server) -> None:
    import platform

    import dssr_core

    text = server.get("/metrics").body.decode()
    assert sample(text, "dssr_build_info", version=dssr_core.__version__, python=platform.python_version()) == 1
    assert sum(line.startswith("dssr_build_info{") for line in text.splitlines()) == 1
