"""Interactive jobs on the Slurm 26.05 test cluster, with the real Apptainer 1.4 (Debian sid root).

The app runs in a real container (the test registry's busybox image), in the
first node's network namespace as Apptainer gives it; it is
``tests/interactive/webapp.sh`` (``busybox nc`` + sh: HTTP and a WebSocket
echo), and it reads ``/etc/JARVICE/random128.txt`` through the bind the
executor asks for, which the stand-in of the 22.05 cluster cannot show.

The image is put in the site's shared image cache beforehand (``apptainer pull
--no-https``: the test registry speaks plain HTTP, which the executor's own
pull does not ask for), so the node script finds it there and does not pull.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_core.testing.contract import unique_name
from dssr_server.wire import info_answer
from dssr_singularity.images import sif_name
from tests.cluster import slurm2605
from tests.server.live import free_port
from tests.singularity.cluster_support import job_dir, slurm_fixtures
from tests.slurm.cluster_support import Server
from tests.slurm.test_http_cluster import Client

from .clients import WebSocket, get
from .sid_support import LINK_TARGET, busybox_app, http_info, legacy_site, listening_since, template_submit
from .support import Site, browse, end, interactive_spec, screenshot_path, submit, wait_running, wait_url

pytestmark = pytest.mark.cluster

pytest.importorskip("dssr_slurm.connector", reason="the Slurm connector cannot be imported")


cluster, connector = slurm_fixtures("slurm2605_cluster")


@pytest.fixture(scope="module")
def image(cluster) -> str:
    """The test registry's busybox image, in the shared image cache (as the node script would name it)."""
    reference = f"{cluster.images['public']}:1"
    cached = Path(cluster.scratch) / "images" / sif_name(reference)
    if not cached.exists():
        part = cached.with_suffix(".part.sif")
        out = cluster.run(
            [
                "srun",
                "-N1",
                "bash",
                "-c",
                f"apptainer -s pull --no-https {part} docker://{reference} && chmod 0644 {part} && mv {part} {cached}",
            ],
            user="kirby",
            check=False,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr
    return reference


@pytest.fixture(scope="module")
def site(connector) -> Iterator[Site]:
    port = free_port()
    s = Site(connector, f"http://jobs.localhost:{port}", port)
    yield s
    s.close()


@pytest.fixture(scope="module")
def app_job(cluster, site, image) -> Iterator[tuple[Any, Any]]:
    spec = interactive_spec(cluster, image=image, command=busybox_app(delay=5))
    ref, _ = submit(site.ds, spec)
    status = wait_running(site.ds, ref)
    yield ref, status
    if site.ds.runstatus(ref) is not None:
        end(site.ds, ref)


def test_the_url_in_info_opens_the_app_in_the_real_container_on_the_first_node(cluster, site, app_job):
    ref, status = app_job
    assert info_answer(site.ds.info(ref))["url"] == ""  # the app sleeps before it listens
    access = site.settings.access(ref.name, ref.number)
    url = wait_url(site.ds, ref)["url"]
    assert url == f"http://{access.label}.jobs.localhost:{site.port}/?token={access.randoms[64]}"
    page = get(url, connect=site.address)
    assert page.status == 200 and f"node: <b>{status.nodes[0]}</b>" in page.text, page.text
    assert get(url.replace("token=", "token=x"), connect=site.address).status == 403
    whoami = json.loads(get(url.split("?")[0] + "whoami", connect=site.address).body)
    assert whoami["node"] == status.nodes[0] == cluster.nodes[0]
    assert whoami["image"] == "public"  # the container's own root, not the node's
    # /etc/JARVICE inside the container is the job's folder, bound by the executor
    assert whoami["etc_jarvice"]["128"] == hashlib.sha256(access.randoms[128].encode()).hexdigest()


def test_a_websocket_client_gets_its_echo_from_the_container(site, app_job):
    ref, _ = app_job
    url = wait_url(site.ds, ref)["url"]
    ws = WebSocket(url.split("?")[0] + "ws", connect=site.address)
    try:
        assert ws.accepted, (ws.status, ws.headers)
        for text in ("hello", "x" * 100):
            ws.send(text)
            assert ws.receive() == "echo:" + text
    finally:
        ws.close()


def test_headless_chromium_opens_the_info_url_and_the_page_echoes(site, app_job, tmp_path):
    ref, _ = app_job
    url = wait_url(site.ds, ref)["url"]
    result = browse(url, tmp_path / "chromium", screenshot_path(tmp_path, "interactive-26.05-apptainer.png"))
    assert result.startswith("echo ok: echo:ping-"), result


def test_termination_closes_the_tunnel_and_the_ended_job_is_refused(cluster, site, app_job):
    ref, _ = app_job
    url = wait_url(site.ds, ref)["url"]
    ws = WebSocket(url.split("?")[0] + "ws", connect=site.address)
    try:
        ws.send("before")
        assert ws.receive() == "echo:before"
        site.ds.terminate(ref)
        assert ws.closed_by_peer(timeout=10)
    finally:
        ws.close()
    deadline = time.monotonic() + 60
    while site.ds.runstatus(ref) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get(url, connect=site.address).status == 404
    end(site.ds, ref)
    assert not job_dir(cluster, "kirby", ref.name).exists()


# --------------------------------------------------------------------------- through the legacy HTTP API
@pytest.fixture(scope="module")
def legacy(cluster, tmp_path_factory) -> Iterator[tuple[Server, Client, int]]:
    """A dssr-server (waitress) on the 26.05 cluster with interactive jobs on, and its proxy, as a site runs
    them; images are pulled by the jobs themselves (the test registry is listed as plain HTTP)."""
    yield from legacy_site(cluster, tmp_path_factory.mktemp("interactive-http"))


@pytest.fixture(scope="module")
def legacy_rest(cluster, tmp_path_factory) -> Iterator[tuple[Server, Client, int]]:
    """The same site with ``JARVICE_SLURM_INTERFACE=http``: jobs go in over slurmrestd (v0.0.45), the
    service folder and the tunnels still go over the SSH connection."""
    tmp = tmp_path_factory.mktemp("interactive-rest")
    yield from legacy_site(
        cluster,
        tmp,
        JARVICE_SLURM_INTERFACE="http",
        JARVICE_SLURMRESTD_ADDR="http://127.0.0.1",
        JARVICE_SLURMRESTD_PORT=cluster.restd_url.rsplit(":", 1)[1],
        JARVICE_SLURMRESTD_API_VERSION="v0.0.45",
        JARVICE_SLURMRESTD_VIA_SSH="false",
        JARVICE_SLURMRESTD_TOKEN=cluster.token(cluster.service_user, 3600),
    )


def nae_image(cluster) -> str:
    if "nae" not in cluster.images:
        pytest.fail(
            "the running 26.05 cluster has no dssr/nae image: python -m tests.cluster down-2605, "
            "then up-2605 (its images changed)"
        )
    return str(cluster.images["nae"])


def test_the_images_url_txt_and_help_html_answer_info_over_http_and_the_url_opens_the_app(cluster, legacy):
    server, client, port = legacy
    files = slurm2605.NAE_FILES["1"]
    spec = interactive_spec(cluster, nodes=1, image=f"{nae_image(cluster)}:1", command=busybox_app(delay=3), url=None)
    ref, fscript = submit(server.downstream, spec)
    try:
        answer = http_info(client, ref)
        access = server.downstream.interactive.access(ref.name, ref.number)
        # the image's template, every placeholder filled with the job's own values
        url = (
            f"http://{access.label}.jobs.localhost:{port}/?token={access.randoms[64]}"
            f"&password={access.password}&job={ref.name}"
        )
        assert answer["url"] == url
        help_page = files["etc/NAE/help.html"]
        for placeholder, value in (
            ("%JOBNAME%", ref.name),
            ("%NIMBIXUSER%", "kirby"),
            ("%CONNECTURL%", url),
            ("%NIMBIXPASSWD%", access.password),
        ):
            help_page = help_page.replace(placeholder, value)
        assert answer["help"] == help_page and "%" not in answer["help"]
        page = get(url, connect=("127.0.0.1", port))
        assert page.status == 200 and "dssr interactive test app" in page.text, page.text
        whoami = json.loads(get(url.split("?")[0] + "whoami", connect=("127.0.0.1", port)).body)
        assert whoami["image"] == "nae" and whoami["node"] == cluster.nodes[0]
        assert access.password not in fscript and access.randoms[64] not in fscript
    finally:
        end(server.downstream, ref)


def test_an_app_on_the_fixed_port_its_url_txt_names_is_reached_and_a_site_can_forbid_that_port(
    cluster, legacy, connector
):
    """A notebook-like app: the image's url.txt says :8888 and the app listens there, whatever
    JARVICE_SERVICE_PORT (5902 here) says; the public URL has no port, the proxy goes to 8888."""
    server, client, port = legacy
    spec = interactive_spec(
        cluster, nodes=1, image=f"{nae_image(cluster)}:2", command=busybox_app(port="8888"), url=None
    )
    ref, _ = submit(server.downstream, spec)
    strict_port = free_port()
    strict = Site(connector, f"http://jobs.localhost:{strict_port}", strict_port, JARVICE_DSSR_APP_PORTS="5900-5999")
    try:
        answer = http_info(client, ref)
        access = server.downstream.interactive.access(ref.name, ref.number)
        url = f"http://{access.label}.jobs.localhost:{port}/?token={access.randoms[64]}"
        assert answer["url"] == url and answer["help"] == ""  # this image has no help.html
        whoami = json.loads(get(url.split("?")[0] + "whoami", connect=("127.0.0.1", port)).body)
        assert whoami["image"] == "nae" and whoami["port"] == "5902"  # its JARVICE_SERVICE_PORT, unused
        ws = WebSocket(url.split("?")[0] + "ws", connect=("127.0.0.1", port))
        try:
            ws.send("notebook")
            assert ws.receive() == "echo:notebook"
        finally:
            ws.close()
        # a site that allows only 5900-5999 never reaches 8888: no link, and its proxy finds nothing listening
        assert info_answer(strict.ds.info(ref))["url"] == ""
        assert get(url.replace(f":{port}/", f":{strict_port}/"), connect=strict.address).status == 502
    finally:
        strict.close()
        end(server.downstream, ref)


def test_an_interactive_upstream_template_gets_etc_jarvice_its_port_and_its_images_nae_files(cluster, legacy):
    """What a JARVICE upstream sends: a template that pulls and runs the app itself.  Its container gets
    /etc/JARVICE (APPTAINER_BIND) and JARVICE_SERVICE_PORT; its command has its secrets; rank 0 reads
    the image's url.txt and help.html through the running container, so ``info`` links as the image says."""
    server, client, port = legacy
    name = unique_name("itmpl")
    ref, fscript = template_submit(cluster, client, f"{nae_image(cluster)}:1", name)
    try:
        info = http_info(client, ref, every=0.2)
        assert info["answered_at"] - listening_since(cluster, name) <= LINK_TARGET
        access = server.downstream.interactive.access(name, 7)
        url = (
            f"http://{access.label}.jobs.localhost:{port}/?token={access.randoms[64]}"
            f"&password={access.password}&job={name}"
        )
        assert info["url"] == url
        assert f'<a href="{url}">' in info["help"] and f"Test app of job {name}" in info["help"]
        for secret in (access.password, *access.randoms.values()):
            assert secret not in fscript
        page = get(url, connect=("127.0.0.1", port))
        assert page.status == 200 and "dssr interactive test app" in page.text  # its command got %RANDOM64%
        whoami = json.loads(get(url.split("?")[0] + "whoami", connect=("127.0.0.1", port)).body)
        assert whoami["image"] == "nae" and whoami["port"] == "5902"
        assert whoami["etc_jarvice"]["128"] == hashlib.sha256(access.randoms[128].encode()).hexdigest()
    finally:
        end(server.downstream, ref)
    assert not job_dir(cluster, "kirby", name).exists()  # its /etc/JARVICE folders went with it


@pytest.mark.parametrize("kind", ["legacy", "legacy_rest"], ids=["ssh", "slurmrestd"])
def test_a_template_whose_image_has_no_etc_nae_gets_its_link_within_5_s_of_the_app_listening(cluster, request, kind):
    """The image is plain busybox (no /etc/NAE): the job is marked as soon as its container starts, and
    ``info`` links to the job's root no later than 5 s after the app itself says it listens."""
    server, client, port = request.getfixturevalue(kind)
    name = unique_name("inonae")
    ref, _ = template_submit(cluster, client, f"{cluster.images['public']}:1", name)
    try:
        info = http_info(client, ref, timeout=90, every=0.2)
        delay = info["answered_at"] - listening_since(cluster, name)
        assert delay <= LINK_TARGET, f"the link came {delay:.1f} s after the app listened"
        access = server.downstream.interactive.access(name, 7)
        assert info["url"] == f"http://{access.label}.jobs.localhost:{port}/" and info["help"] == ""
        whoami = json.loads(get(info["url"] + "whoami", connect=("127.0.0.1", port)).body)
        assert whoami["image"] == "public" and whoami["port"] == "5902"
        assert whoami["etc_jarvice"]["128"] == hashlib.sha256(access.randoms[128].encode()).hexdigest()
    finally:
        end(server.downstream, ref)


def test_a_terminate_under_live_proxy_traffic_writes_no_error_line(cluster, site, image, caplog):
    """Requests keep coming through the proxy while the job is terminated: those that find the app gone are
    answered 502 (one INFO line each, with job, port and reason), 404 once the job has ended; no ERROR
    line (paramiko's refused-channel line included) and no traceback, at INFO as a site logs."""
    spec = interactive_spec(cluster, nodes=1, image=image, command=busybox_app())
    ref, _ = submit(site.ds, spec)
    statuses: list[int] = []
    stop = threading.Event()
    try:
        url = wait_url(site.ds, ref)["url"]
        whoami = url.split("?")[0] + "whoami"

        def traffic() -> None:
            while not stop.is_set():
                try:
                    statuses.append(get(whoami, connect=site.address, timeout=10).status)
                except OSError:
                    statuses.append(0)
                time.sleep(0.05)

        with caplog.at_level(logging.INFO):
            ws = WebSocket(url.split("?")[0] + "ws", connect=site.address)
            ws.send("live")
            assert ws.receive() == "echo:live"
            worker = threading.Thread(target=traffic, daemon=True)
            worker.start()
            time.sleep(1)
            site.ds.terminate(ref)
            assert ws.closed_by_peer(timeout=10)
            ws.close()
            deadline = time.monotonic() + 60
            while (site.ds.runstatus(ref) is not None or statuses[-3:] != [404] * 3) and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            worker.join(15)
        assert statuses[0] == 200 and statuses[-3:] == [404] * 3, statuses
        # 0: a request the app had taken when it was killed (the connection closes with no answer)
        assert set(statuses) <= {200, 502, 404, 0}, statuses
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not errors, "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in errors)
        refused = [r for r in caplog.records if "is not answering" in r.getMessage()]
        assert len(refused) == statuses.count(502), (statuses, [r.getMessage() for r in refused])
        for record in refused:
            assert record.levelno == logging.INFO and f"job {ref.jobid}:" in record.getMessage()
            assert "port 5902" in record.getMessage() and "Connect failed" in record.getMessage()
    finally:
        stop.set()
        if site.ds.runstatus(ref) is not None:
            end(site.ds, ref)
        else:
            site.ds.connector.cleanup(ref)
