"""Interactive jobs on the real Slurm 22.05 test cluster, reached through the proxy.

The job's app is ``tests/interactive/webapp.py`` (HTTP + WebSocket echo, Python
standard library), sent in the job's command.  The container runtime on this
cluster is the Apptainer **stand-in** (tests/standin/apptainer): it checks the
``exec`` arguments (the ``/etc/JARVICE`` bind among them) and then runs the
command natively, so the app listens in the first node's own network namespace
(10.77.0.11), which the proxy reaches through an SSH ``direct-tcpip`` channel
from the login node's sshd.  Everything else is real: Slurm, sshd, the proxy, the
clients, and Chromium.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

import pytest

from dssr_core import Identity, JobRef, Settings
from dssr_server.wire import info_answer
from tests.server.live import free_port
from tests.singularity.cluster_support import job_dir, of, slurm_fixtures, standin_calls, wait_end
from tests.slurm_rest.test_backend_cluster import rest_env

from .clients import WebSocket, get
from .support import Site, app_command, browse, end, interactive_spec, screenshot_path, submit, wait_running, wait_url

pytestmark = pytest.mark.cluster

SlurmConnector = pytest.importorskip(
    "dssr_slurm.connector", reason="the Slurm connector cannot be imported"
).SlurmConnector


cluster, connector = slurm_fixtures("slurm_cluster")


@pytest.fixture(scope="module")
def site(connector) -> Iterator[Site]:
    port = free_port()
    s = Site(connector, f"http://jobs.localhost:{port}", port)
    yield s
    s.close()


@pytest.fixture(scope="class")
def app_job(cluster, site, caplog_module) -> Iterator[tuple[JobRef, str, Any]]:
    """One interactive job on both nodes (exclusively) whose app starts a few seconds after the job."""
    spec = interactive_spec(cluster, command=app_command(delay=6))
    ref, fscript = submit(site.ds, spec)
    status = wait_running(site.ds, ref)
    yield ref, fscript, status
    end(site.ds, ref)
    assert not job_dir(cluster, "kirby", ref.name).exists()  # garbage collection removed the job's folders


@pytest.fixture(scope="module")
def caplog_module():
    """Every log record of the module's jobs (to check that no secret is ever logged)."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old)


class TestAnAppOnTwoNodes:
    """One two-node interactive job, reached in every way while it runs."""

    def test_info_has_no_url_until_the_app_listens_then_the_substituted_url_and_help(self, cluster, site, app_job):
        ref, _, status = app_job
        access = site.settings.access(ref.name, ref.number)
        # the job runs and has marked itself interactive, but the app sleeps before it listens
        deadline = time.monotonic() + 30
        while site.ds.services.service_files(status) is None:
            assert time.monotonic() < deadline, "the job never wrote its service folder"
            time.sleep(0.3)
        early = info_answer(site.ds.info(ref))
        assert early["url"] == "" and set(early) == {"about", "help", "url", "actions"}
        info = wait_url(site.ds, ref)
        assert info["url"] == f"http://{access.label}.jobs.localhost:{site.port}/?token={access.randoms[64]}"
        assert access.label.startswith(f"{ref.number}-") and len(access.label) > len(str(ref.number)) + 16

    def test_the_url_in_info_opens_the_app_on_the_first_node_over_http(self, cluster, site, app_job):
        ref, _, status = app_job
        url = wait_url(site.ds, ref)["url"]
        page = get(url, connect=site.address)
        assert page.status == 200, page.text
        assert f"node: <b>{status.nodes[0]}</b>" in page.text
        assert page.closed  # one request per proxied connection, whatever the client asked
        whoami = get(url.split("?")[0] + "whoami", connect=site.address).body
        assert json.loads(whoami)["node"] == status.nodes[0] == cluster.nodes[0]
        assert json.loads(whoami)["port"] == str(site.settings.service_port)
        # the app checks the token it was started with: the command got the same %RANDOM64% as the URL
        assert get(url.replace("token=", "token=x"), connect=site.address).status == 403

    def test_a_websocket_client_gets_its_echo_through_the_proxy(self, site, app_job):
        ref, _, _ = app_job
        url = wait_url(site.ds, ref)["url"]
        ws = WebSocket(url.split("?")[0] + "ws", connect=site.address)
        try:
            assert ws.accepted, (ws.status, ws.headers)
            for text in ("hello", "x" * 3000):
                ws.send(text)
                assert ws.receive() == "echo:" + text
        finally:
            ws.close()

    def test_the_job_gets_its_secrets_as_etc_jarvice_files_bound_into_the_container(self, cluster, site, app_job):
        ref, _, _ = app_job
        access = site.settings.access(ref.name, ref.number)
        folder = job_dir(cluster, "kirby", ref.name) / ".dssr-etc-jarvice-0"
        for n in (16, 32, 64, 128):
            path = folder / f"random{n}.txt"
            assert path.read_text() == access.randoms[n] and len(access.randoms[n]) == n
            assert path.stat().st_mode & 0o077 == 0
        app_execs = [argv for argv in of(standin_calls(cluster, "kirby", ref.name), "exec") if "/bin/sh" in argv]
        assert len(app_execs) == 2  # one per node, each with its own folder bound read-only
        binds = sorted(
            value
            for argv in app_execs
            for flag, value in zip(argv, argv[1:], strict=False)
            if flag == "-B" and value.endswith(":/etc/JARVICE:ro")
        )
        assert binds == [f"{job_dir(cluster, 'kirby', ref.name)}/.dssr-etc-jarvice-{i}:/etc/JARVICE:ro" for i in (0, 1)]

    def test_wrong_labels_are_refused_with_one_404(self, site, app_job):
        ref, _, _ = app_job
        access = site.settings.access(ref.name, ref.number)
        wrong = [
            f"{ref.number}-{'a' * 20}",  # a made-up token
            f"{ref.number + 1}-{access.label.split('-', 1)[1]}",  # the right token, another number
            "www",
        ]
        for label in wrong:
            reply = get(f"http://{label}.jobs.localhost:{site.port}/whoami", connect=site.address)
            assert (reply.status, reply.text) == (404, "No running interactive job at this address.\n"), label
        assert get(f"http://{access.label}.other.test:{site.port}/whoami", connect=site.address).status == 404
        assert get(f"http://{access.label}.jobs.localhost:{site.port}/whoami", connect=site.address).status == 200

    def test_headless_chromium_opens_the_info_url_and_the_page_echoes_over_websocket(self, site, app_job, tmp_path):
        ref, _, _ = app_job
        url = wait_url(site.ds, ref)["url"]
        result = browse(url, tmp_path / "chromium", screenshot_path(tmp_path, "interactive-22.05-standin.png"))
        assert result.startswith("echo ok: echo:ping-"), result


def test_another_jobs_label_a_batch_job_and_an_ended_job_are_refused_and_termination_closes_the_tunnel(
    cluster, site, caplog_module
):
    spec = interactive_spec(cluster, nodes=1)
    ref, fscript = submit(site.ds, spec)
    batch = interactive_spec(cluster, nodes=1, interactive=False, url=None, command="sleep 120")
    batch_ref, _ = submit(site.ds, batch)
    wait_running(site.ds, ref)
    wait_running(site.ds, batch_ref)
    url = wait_url(site.ds, ref)["url"]
    access = site.settings.access(ref.name, ref.number)
    for label in (
        site.settings.label(batch.name, batch.number),  # a running job that is not interactive
        f"{batch.number}-{access.label.split('-', 1)[1]}",
    ):  # this job's token with the other's number
        assert get(f"http://{label}.jobs.localhost:{site.port}/whoami", connect=site.address).status == 404
    assert info_answer(site.ds.info(batch_ref))["url"] == ""
    end(site.ds, batch_ref)
    ws = WebSocket(url.split("?")[0] + "ws", connect=site.address)
    try:
        assert ws.accepted
        ws.send("before")
        assert ws.receive() == "echo:before"
        site.ds.terminate(ref)
        assert ws.closed_by_peer(timeout=10)
    finally:
        ws.close()
    status = wait_end(site.ds, ref)
    assert get(url, connect=site.address).status == 404
    assert info_answer(site.ds.info(ref))["url"] == ""
    batch_text = cluster.run(["scontrol", "write", "batch_script", ref.jobid, "-"], user="kirby", check=False).stdout
    secrets = [access.password, *access.randoms.values()]
    for text in (fscript, batch_text, status.output, "\n".join(caplog_module)):
        for secret in secrets:
            assert secret not in text
    assert "%RANDOM64%" in fscript  # the command is filled on the node, from the secrets file
    site.ds.connector.cleanup(ref)
    assert not job_dir(cluster, "kirby", ref.name).exists()


def test_a_tunnel_closes_after_the_idle_timeout(cluster, connector):
    port = free_port()
    idle_site = Site(connector, f"http://jobs.localhost:{port}", port, idle=2)
    ref, _ = submit(idle_site.ds, interactive_spec(cluster, nodes=1))
    try:
        wait_running(idle_site.ds, ref)
        url = wait_url(idle_site.ds, ref)["url"]
        ws = WebSocket(url.split("?")[0] + "ws", connect=idle_site.address)
        ws.send("still there")
        assert ws.receive() == "echo:still there"
        started = time.monotonic()
        assert ws.closed_by_peer(timeout=15)
        assert 1.5 < time.monotonic() - started < 10
        ws.close()
    finally:
        end(idle_site.ds, ref)
        idle_site.close()


def test_path_based_domain_routes_by_prefix_and_tells_the_app_its_path(cluster, connector):
    port = free_port()
    path_site = Site(connector, f"http://127.0.0.1:{port}/job$", port)
    ref, _ = submit(path_site.ds, interactive_spec(cluster, nodes=1))
    try:
        wait_running(path_site.ds, ref)
        access = path_site.settings.access(ref.name, ref.number)
        url = wait_url(path_site.ds, ref)["url"]
        assert url == f"http://127.0.0.1:{port}/job{access.label}/?token={access.randoms[64]}"
        assert get(url).status == 200
        whoami = json.loads(get(f"http://127.0.0.1:{port}/job{access.label}/whoami").body)
        assert whoami["ingress"] == f"job{access.label}"
        ws = WebSocket(f"http://127.0.0.1:{port}/job{access.label}/ws")
        ws.send("path")
        assert ws.receive() == "echo:path"
        ws.close()
        assert get(f"http://127.0.0.1:{port}/job{ref.number}-{'b' * 20}/whoami").status == 404
        assert get(f"http://127.0.0.1:{port}/other/{access.label}/whoami").status == 404
    finally:
        end(path_site.ds, ref)
        path_site.close()


def test_a_slurmrestd_site_reaches_its_interactive_job_through_the_ssh_connection(cluster, tmp_path):
    """JARVICE_SLURM_INTERFACE=http: the job goes in over slurmrestd; the tunnel still rides the SSH connection."""
    rest = SlurmConnector(Settings(rest_env(cluster, tmp_path, "v0.0.38", "true")))
    port = free_port()
    rest_site = Site(rest, f"http://jobs.localhost:{port}", port)
    user = cluster.users["kirby"]
    token = cluster.idp.mint(email=user.email, user=user.name)
    identity = Identity(
        email=user.email, username=user.name, claims={"sun": user.name, "email": user.email}, token=token
    )
    spec = interactive_spec(cluster, nodes=1, identity=identity)
    ref, fscript = submit(rest_site.ds, spec)
    try:
        wait_running(rest_site.ds, ref)
        url = wait_url(rest_site.ds, ref)["url"]
        assert get(url, connect=rest_site.address).status == 200
        ws = WebSocket(url.split("?")[0] + "ws", connect=rest_site.address)
        ws.send("over rest")
        assert ws.receive() == "echo:over rest"
        ws.close()
        access = rest_site.settings.access(ref.name, ref.number)
        assert not any(secret in fscript for secret in (access.password, *access.randoms.values()))
    finally:
        end(rest_site.ds, ref)
        rest_site.close()
        rest.close()
