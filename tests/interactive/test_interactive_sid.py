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

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from dssr_singularity.images import sif_name
from tests.server.live import free_port
from tests.singularity.cluster_support import job_dir, slurm_fixtures

from .clients import WebSocket, get
from .support import Site, browse, end, interactive_spec, screenshot_path, submit, wait_running, wait_url

pytestmark = pytest.mark.cluster

pytest.importorskip("dssr_slurm.connector", reason="the Slurm connector cannot be imported")

APP = (Path(__file__).parent / "webapp.sh").read_text()


cluster, connector = slurm_fixtures("slurm2605_cluster")


@pytest.fixture(scope="module")
def image(cluster) -> str:
    """The test registry's busybox image, in the shared image cache (as the node script would name it)."""
    reference = f"{cluster.images['public']}:1"
    cached = Path(cluster.scratch) / "images" / sif_name(reference)
    if not cached.exists():
        part = cached.with_suffix(".part.sif")
        out = cluster.run(["srun", "-N1", "bash", "-c",
                           f"apptainer -s pull --no-https {part} docker://{reference} && chmod 0644 {part} && "
                           f"mv {part} {cached}"], user="kirby", check=False, timeout=180)
        assert out.returncode == 0, out.stderr
    return reference


def busybox_app(delay: float = 0) -> str:
    source = base64.b64encode(APP.encode()).decode()
    wait = f"sleep {delay}; " if delay else ""
    return (f'{wait}printf %s {source} | base64 -d > webapp.sh && '
            'exec nc -ll -p "$JARVICE_SERVICE_PORT" -e sh webapp.sh %RANDOM64%')


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
    assert dict(site.ds.info(ref))["url"] == ""  # the app sleeps before it listens
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
