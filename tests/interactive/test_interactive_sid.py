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

from dssr_core.proxy import JobProxy
from dssr_server.wire import info_answer
from dssr_singularity.images import sif_name
from dssr_core import JobRef
from dssr_core.testing.contract import unique_name
from tests.cluster import sid
from tests.helpers import legacy_template, submit_args
from tests.server.live import free_port
from tests.slurm.cluster_support import Server, serve, slurm_env
from tests.slurm.test_http_cluster import Client
from tests.singularity.cluster_support import job_dir, slurm_fixtures

from .clients import WebSocket, get
from .support import KEY, Site, browse, end, interactive_spec, screenshot_path, submit, wait_running, wait_url

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


def busybox_app(delay: float = 0, port: str = "$JARVICE_SERVICE_PORT") -> str:
    source = base64.b64encode(APP.encode()).decode()
    wait = f"sleep {delay}; " if delay else ""
    return (f'{wait}printf %s {source} | base64 -d > webapp.sh && '
            f'exec nc -ll -p "{port}" -e sh webapp.sh %RANDOM64%')


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
    port = free_port()
    env = slurm_env(cluster, tmp_path_factory.mktemp("interactive-http"), JARVICE_BAREMETAL_EXECUTOR="singularity",
                    JARVICE_SINGULARITY_INSECURE_REGISTRIES=cluster.registry, JARVICE_SINGULARITY_OVERLAY_SIZE="0",
                    JARVICE_JOBS_DOMAIN=f"http://jobs.localhost:{port}", JARVICE_DSSR_INTERACTIVE_KEY=KEY,
                    JARVICE_DSSR_PROXY_LISTEN=f"127.0.0.1:{port}", JARVICE_SYSTEM_REGISTRY=cluster.registry,
                    JARVICE_SYSTEM_REPO_BASE="dssr", JARVICE_IMAGES_TAG="1")
    servers = serve(env)
    server = next(servers)
    services = server.downstream.services
    assert services is not None
    proxy = JobProxy(services, "127.0.0.1", port, idle_timeout=60).start()
    yield server, Client(server.url), port
    proxy.close()
    next(servers, None)


def nae_image(cluster) -> str:
    if "nae" not in cluster.images:
        pytest.fail("the running 26.05 cluster has no dssr/nae image: python tests/cluster/harness.py down-2605, "
                    "then up-2605 (its images changed)")
    return str(cluster.images["nae"])


def http_info(client: Client, ref: Any, timeout: float = 120) -> dict[str, Any]:
    """The legacy ``info`` answer over HTTP, once its ``url`` is set."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = client.post(f"/request/{ref.name}/{ref.number}/{ref.jobid}/info", {"qs": {}})
        assert status == 200, answer
        if answer["url"] or time.monotonic() > deadline:
            return dict(answer)
        time.sleep(0.5)


def test_the_images_url_txt_and_help_html_answer_info_over_http_and_the_url_opens_the_app(cluster, legacy):
    server, client, port = legacy
    files = sid.NAE_FILES["1"]
    spec = interactive_spec(cluster, nodes=1, image=f"{nae_image(cluster)}:1", command=busybox_app(delay=3), url=None)
    ref, fscript = submit(server.downstream, spec)
    try:
        answer = http_info(client, ref)
        access = server.downstream.interactive.access(ref.name, ref.number)
        # the image's template, every placeholder filled with the job's own values
        url = (f"http://{access.label}.jobs.localhost:{port}/?token={access.randoms[64]}"
               f"&password={access.password}&job={ref.name}")
        assert answer["url"] == url
        help_page = files["etc/NAE/help.html"]
        for placeholder, value in (("%JOBNAME%", ref.name), ("%NIMBIXUSER%", "kirby"), ("%CONNECTURL%", url),
                                   ("%NIMBIXPASSWD%", access.password)):
            help_page = help_page.replace(placeholder, value)
        assert answer["help"] == help_page and "%" not in answer["help"]
        page = get(url, connect=("127.0.0.1", port))
        assert page.status == 200 and "dssr interactive test app" in page.text, page.text
        whoami = json.loads(get(url.split("?")[0] + "whoami", connect=("127.0.0.1", port)).body)
        assert whoami["image"] == "nae" and whoami["node"] == cluster.nodes[0]
        assert access.password not in fscript and access.randoms[64] not in fscript
    finally:
        end(server.downstream, ref)


def test_an_app_on_the_fixed_port_its_url_txt_names_is_reached_and_a_site_can_forbid_that_port(cluster, legacy,
                                                                                               connector):
    """A notebook-like app: the image's url.txt says :8888 and the app listens there, whatever
    JARVICE_SERVICE_PORT (5902 here) says; the public URL has no port, the proxy goes to 8888."""
    server, client, port = legacy
    spec = interactive_spec(cluster, nodes=1, image=f"{nae_image(cluster)}:2", command=busybox_app(port="8888"),
                            url=None)
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
    body = "\n".join([
        'own="$(mktemp -d)" && sif="$own/app.sif"',
        # a cache of its own: the user's default cache would serve later pulls of the same image from it
        'APPTAINER_CACHEDIR="$own/cache" singularity "$SV_FLAG" pull "$sif" "$JARVICE_APP_IMAGE" || exit 1',
        'if singularity "$SV_FLAG" exec "$sif" /bin/sh -c "$JARVICE_CMD"; then echo JARVICE_CMD_SUCCESS; fi',
    ])
    template = legacy_template(busybox_app(), body=body, extra={
        "JOBOBJ_INTERACTIVE": "True", "JOBOBJ_REPO": f"{nae_image(cluster)}:1"})
    name = unique_name("itmpl")
    bearer = cluster.idp.mint(email=cluster.users["kirby"].email, audience="jarvice")
    status, answer = client.post("/submit", submit_args(name, 7, template, nodes=1, bearer=bearer))
    assert status == 200, answer
    ref = JobRef(name, 7, answer[0])
    try:
        info = http_info(client, ref)
        access = server.downstream.interactive.access(name, 7)
        url = (f"http://{access.label}.jobs.localhost:{port}/?token={access.randoms[64]}"
               f"&password={access.password}&job={name}")
        assert info["url"] == url
        assert f'<a href="{url}">' in info["help"] and f"Test app of job {name}" in info["help"]
        for secret in (access.password, *access.randoms.values()):
            assert secret not in answer[1]  # fscript
        page = get(url, connect=("127.0.0.1", port))
        assert page.status == 200 and "dssr interactive test app" in page.text  # its command got %RANDOM64%
        whoami = json.loads(get(url.split("?")[0] + "whoami", connect=("127.0.0.1", port)).body)
        assert whoami["image"] == "nae" and whoami["port"] == "5902"
        assert whoami["etc_jarvice"]["128"] == hashlib.sha256(access.randoms[128].encode()).hexdigest()
    finally:
        end(server.downstream, ref)
    assert not job_dir(cluster, "kirby", name).exists()  # its /etc/JARVICE folders went with it
