"""JobServices: the info answer of an interactive job and the proxy's look-up, on a connector double.

The double serves a job's service folder from a dict and "connects" when told
the app listens; the real path (Slurm, SSH tunnels, the node script) is the
cluster tier's (tests/interactive/).
"""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any, Sequence

import pytest

from dssr_core import ClusterError, JobInfo, JobRef, JobState, JobStatus, Settings
from dssr_core._interactive import InteractiveSettings
from dssr_core._services import JobServices
from tests.helpers import ConnectorDouble

KEY = "x" * 40


class Double(ConnectorDouble):
    """Running jobs, their service files, and whether their app listens: set by the test."""

    supports_interactive = True

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobStatus] = []
        self.files: dict[tuple[str, str], str] = {}
        #: the ports the app listens on, on every node
        self.listening: set[int] = set()
        self.connects: list[tuple[str, int]] = []

    def snapshot(self) -> Sequence[JobStatus]:
        return self.jobs

    def job_file(self, status: JobStatus, name: str, limit: int = 65536) -> str | None:
        return self.files.get((status.ref.jobid, name))

    def open_service(self, node: str, port: int, timeout: float) -> Any:
        self.connects.append((node, port))
        if port not in self.listening:
            raise ClusterError("Connect failed")
        return socket.socket()


@pytest.fixture
def world():
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
    connector.jobs = [
        JobStatus(JobRef("desk", 0, "11"), JobState.RUNNING, ("n3", "n4"), owner="kirby"),
        JobStatus(JobRef("batch", 0, "12"), JobState.RUNNING, ("n5",), owner="kirby"),
    ]
    return connector, settings, JobServices(connector, settings)


def test_info_is_empty_until_the_app_listens_then_the_url_and_the_help_page(world):
    connector, settings, services = world
    ref = JobRef("desk", 42, "11")
    connector.files[("11", "interactive")] = "n3\n"
    connector.files[("11", "url.txt")] = "https://%PUBLICADDR%:5902/vnc.html?password=%NIMBIXPASSWD%\n"
    connector.files[("11", "help.html")] = "<a href='%CONNECTURL%'>%JOBNAME%</a> %NIMBIXUSER%"
    access = settings.access("desk", 42)
    url = f"https://{access.label}.jobs.example.org/vnc.html?password={access.password}"
    assert services.info(ref) == JobInfo(url=None, help=f"<a href='{url}'>desk</a> kirby")
    connector.listening = {7000}
    assert services.info(ref).url == url
    # the template's 5902 first, then the site's service port, where this desktop listens (vncstart.sh)
    assert connector.connects[-2:] == [("n3", 5902), ("n3", 7000)]


def test_a_job_without_marker_or_not_running_answers_the_empty_info(world):
    connector, _, services = world
    connector.listening = {7000}
    assert services.info(JobRef("batch", 7, "12")) == JobInfo()
    assert services.info(JobRef("gone", 7, "99")) == JobInfo()
    assert connector.connects == []


def test_the_proxy_finds_a_job_only_by_its_own_label(world):
    connector, settings, services = world
    connector.files[("11", "interactive")] = "n3\n"
    target = services.resolve(settings.label("desk", 42))
    assert target is not None and (target.ref.jobid, target.node, target.port) == ("11", "n3", 7000)
    assert services.resolve(settings.label("batch", 43)) is None  # running, but not interactive
    good = settings.label("desk", 42)
    assert services.resolve(good[:-1] + ("b" if good.endswith("a") else "a")) is None
    assert services.resolve("42-" + "a" * 20) is None
    connector.jobs = [j for j in connector.jobs if j.ref.name != "desk"]
    assert services.resolve(settings.label("desk", 42)) is None  # ended


def test_closing_a_job_closes_its_tunnels_and_reap_closes_those_of_ended_jobs(world):
    connector, _, services = world
    closed: list[str] = []
    services.track(JobRef("desk", 1, "11"), lambda: closed.append("a"))
    services.track(JobRef("desk", 1, "11"), lambda: closed.append("b"))
    services.track(JobRef("batch", 1, "12"), lambda: closed.append("c"))
    assert services.close_job(JobRef("desk", 1, "11")) == 2 and sorted(closed) == ["a", "b"]
    connector.jobs = []
    services.reap()
    assert sorted(closed) == ["a", "b", "c"] and services.open_tunnels() == 0


def test_an_app_on_the_port_its_url_names_is_linked_and_proxied_there(world):
    connector, settings, services = world
    ref = JobRef("desk", 42, "11")
    connector.files[("11", "interactive")] = "n3\n"
    connector.files[("11", "url.txt")] = "https://%PUBLICADDR%:8888/lab?token=%RANDOM64%\n"
    connector.listening = {8888}
    access = settings.access("desk", 42)
    assert services.info(ref).url == f"https://{access.label}.jobs.example.org/lab?token={access.randoms[64]}"
    target = services.resolve(access.label)
    assert target is not None and (target.node, target.port) == ("n3", 8888)
    # chosen once: the app's port is not asked again, even when the service port opens later
    connector.listening = {7000, 8888}
    connector.connects.clear()
    assert services.resolve(access.label).port == 8888 and connector.connects == []


def test_a_port_the_site_does_not_allow_is_never_tried(world):
    connector, _, _ = world
    settings = InteractiveSettings.from_settings(
        Settings(
            {
                "JARVICE_JOBS_DOMAIN": "jobs.example.org",
                "JARVICE_DSSR_INTERACTIVE_KEY": KEY,
                "JARVICE_SERVICE_PORT": "7000",
                "JARVICE_DSSR_APP_PORTS": "5900-5999",
            }
        )
    )
    services = JobServices(connector, settings)
    connector.files[("11", "interactive")] = "n3\n"
    connector.files[("11", "url.txt")] = "https://%PUBLICADDR%:22/\n"  # the node's sshd
    connector.listening = {22}
    assert services.info(JobRef("desk", 42, "11")).url is None
    target = services.resolve(settings.label("desk", 42))
    assert target is not None and target.port == 7000  # the service port, where nothing listens: a 502
    assert {port for _, port in connector.connects} == {7000}


def test_the_files_are_read_again_until_the_app_answers_then_kept(world):
    """An upstream template's first container (an init container, no /etc/NAE) got the marker without files;
    the app's container brings its url.txt later: the link follows it, and stays once the app answered."""
    connector, settings, services = world
    ref = JobRef("desk", 42, "11")
    connector.files[("11", "interactive")] = "n3\n"
    assert services.info(ref) == JobInfo()
    connector.files[("11", "url.txt")] = "https://%PUBLICADDR%:8888/lab?token=%RANDOM64%\n"
    connector.listening = {8888}
    access = settings.access("desk", 42)
    url = f"https://{access.label}.jobs.example.org/lab?token={access.randoms[64]}"
    assert services.info(ref).url == url
    connector.files[("11", "url.txt")] = "https://%PUBLICADDR%/elsewhere\n"
    assert services.info(ref).url == url


def test_a_marker_written_after_a_look_is_seen_within_a_second(world, monkeypatch):
    connector, _, services = world
    now = [1000.0]
    monkeypatch.setattr("dssr_core._services.time", SimpleNamespace(monotonic=lambda: now[0]))
    ref = JobRef("desk", 42, "11")
    connector.listening = {7000}
    assert services.info(ref).url is None  # no marker yet: the container has not started
    connector.files[("11", "interactive")] = "n3\n"
    now[0] += 0.5
    assert services.info(ref).url is None  # within the second, not asked again
    now[0] += 0.6
    assert services.info(ref).url is not None
