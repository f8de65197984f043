"""JobServices: the info answer of an interactive job and the proxy's look-up, on a connector double.

The double serves a job's service folder from a dict and "connects" when told
the app listens; the real path (Slurm, SSH tunnels, the node script) is the
cluster tier's (tests/interactive/).
"""

from __future__ import annotations

import socket
from typing import Any, Sequence

import pytest

from dssr_core import ClusterError, Connector, JobRef, JobState, JobStatus, Settings
from dssr_core.interactive import InteractiveSettings
from dssr_core.services import JobServices

KEY = "x" * 40


class Double(Connector):
    """Running jobs, their service files, and whether their app listens: set by the test."""

    name = "double"
    supports_interactive = True

    def __init__(self) -> None:
        super().__init__(Settings({}))
        self.jobs: list[JobStatus] = []
        self.files: dict[tuple[str, str], str] = {}
        self.listening = False
        self.connects: list[tuple[str, int]] = []

    def snapshot(self) -> Sequence[JobStatus]:
        return self.jobs

    def job_file(self, status: JobStatus, name: str, limit: int = 65536) -> str | None:
        return self.files.get((status.ref.jobid, name))

    def open_service(self, node: str, port: int, timeout: float) -> Any:
        self.connects.append((node, port))
        if not self.listening:
            raise ClusterError("Connect failed")
        return socket.socket()

    def submit(self, spec, executor): raise NotImplementedError  # noqa: E704
    def exit_status(self, ref): raise NotImplementedError  # noqa: E704
    def cleanup(self, ref): raise NotImplementedError  # noqa: E704
    def terminate(self, ref, force=False): raise NotImplementedError  # noqa: E704
    def release(self, ref): raise NotImplementedError  # noqa: E704
    def events(self, ref): raise NotImplementedError  # noqa: E704
    def tail(self, ref, lines): raise NotImplementedError  # noqa: E704
    def list_files(self, path, details=False): raise NotImplementedError  # noqa: E704
    def ping(self): return None  # noqa: E704


@pytest.fixture
def world():
    connector = Double()
    settings = InteractiveSettings.from_settings(Settings({
        "JARVICE_JOBS_DOMAIN": "jobs.example.org", "JARVICE_DSSR_INTERACTIVE_KEY": KEY, "JARVICE_SERVICE_PORT": "7000"}))
    connector.jobs = [JobStatus(JobRef("desk", 0, "11"), JobState.RUNNING, ("n3", "n4"), owner="kirby"),
                      JobStatus(JobRef("batch", 0, "12"), JobState.RUNNING, ("n5",), owner="kirby")]
    return connector, settings, JobServices(connector, settings)


def test_info_is_empty_until_the_app_listens_then_the_url_and_the_help_page(world):
    connector, settings, services = world
    ref = JobRef("desk", 42, "11")
    connector.files[("11", "interactive")] = "n3\n"
    connector.files[("11", "url.txt")] = "https://%PUBLICADDR%:5902/vnc.html?password=%NIMBIXPASSWD%\n"
    connector.files[("11", "help.html")] = "<a href='%CONNECTURL%'>%JOBNAME%</a> %NIMBIXUSER%"
    access = settings.access("desk", 42)
    url = f"https://{access.label}.jobs.example.org/vnc.html?password={access.password}"
    assert services.info(ref) == {"about": "", "help": f"<a href='{url}'>desk</a> kirby", "url": "", "actions": {}}
    connector.listening = True
    assert services.info(ref)["url"] == url
    assert connector.connects[-1] == ("n3", 7000)  # the first node, the site's port


def test_a_job_without_marker_or_not_running_answers_the_empty_info(world):
    connector, _, services = world
    connector.listening = True
    assert services.info(JobRef("batch", 7, "12"))["url"] == ""
    assert services.info(JobRef("gone", 7, "99"))["url"] == ""
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
