"""What the tests of the Slurm 26.05 cluster (real Apptainer) and benchmarks/submit_to_link.py share: the busybox
test app as a job command (stamped: it marks when it starts listening), a site behind the legacy HTTP API,
an upstream template that runs the app itself, and waiting for the link."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any, Iterator

from dssr_core import JobRef
from dssr_core._proxy import JobProxy
from tests.helpers import legacy_template, submit_args
from tests.server.live import free_port
from tests.singularity.cluster_support import job_dir
from tests.slurm.cluster_support import Server, serve, slurm_env
from tests.slurm.test_http_cluster import Client

from .support import KEY

APP = (Path(__file__).parent / "webapp.sh").read_text()


#: the file a stamped app writes in its working folder (the job's) the moment it starts listening: its
#: modification time is that moment (busybox's date has no sub-second %N)
STAMP = ".app-listening"


def busybox_app(delay: float = 0, port: str = "$JARVICE_SERVICE_PORT", stamp: bool = False) -> str:
    source = base64.b64encode(APP.encode()).decode()
    wait = f"sleep {delay}; " if delay else ""
    mark = f': > "$PWD/{STAMP}" && ' if stamp else ""
    return (
        f'{wait}printf %s {source} | base64 -d > webapp.sh && {mark}exec nc -ll -p "{port}" -e sh webapp.sh %RANDOM64%'
    )


def listening_since(cluster: Any, name: str) -> float:
    """When the job's app started listening (seconds since the epoch), as the app itself wrote it."""
    return (job_dir(cluster, "kirby", name) / STAMP).stat().st_mtime


def legacy_site(cluster: Any, tmp: Path, **interface: str) -> Iterator[tuple[Server, Client, int]]:
    """A dssr-server (waitress) on the 26.05 cluster with interactive jobs on, and its proxy, as a site runs
    them; images are pulled by the jobs themselves (the test registry is listed as plain HTTP).  A generator:
    the first ``next`` gives (server, its client, the proxy's port), the second closes them."""
    port = free_port()
    env = slurm_env(
        cluster,
        tmp,
        JARVICE_BAREMETAL_EXECUTOR="singularity",
        JARVICE_SINGULARITY_INSECURE_REGISTRIES=cluster.registry,
        JARVICE_SINGULARITY_OVERLAY_SIZE="0",
        JARVICE_JOBS_DOMAIN=f"http://jobs.localhost:{port}",
        JARVICE_DSSR_INTERACTIVE_KEY=KEY,
        JARVICE_DSSR_PROXY_LISTEN=f"127.0.0.1:{port}",
        JARVICE_SYSTEM_REGISTRY=cluster.registry,
        JARVICE_SYSTEM_REPO_BASE="dssr",
        JARVICE_IMAGES_TAG="1",
        **interface,
    )
    servers = serve(env)
    server = next(servers)
    services = server.downstream.services
    assert services is not None
    proxy = JobProxy(services, "127.0.0.1", port, idle_timeout=60).start()
    yield server, Client(server.url), port
    proxy.close()
    next(servers, None)


def http_info(client: Client, ref: Any, timeout: float = 120, every: float = 0.5) -> dict[str, Any]:
    """The legacy ``info`` answer over HTTP, once its ``url`` is set (``answered_at``: when it came)."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = client.post(f"/request/{ref.name}/{ref.number}/{ref.jobid}/info", {"qs": {}})
        assert status == 200, answer
        if answer["url"] or time.monotonic() > deadline:
            return {**answer, "answered_at": time.time()}
        time.sleep(every)


#: the longest a link may take once the app listens (issue 24)
LINK_TARGET = 5.0


def template_submit(cluster: Any, client: Client, image: str, name: str, stamp: bool = True) -> tuple[JobRef, str]:
    """What a JARVICE upstream sends: a template that pulls ``image`` and runs the app in it itself;
    the job and the submission's ``fscript``."""
    body = "\n".join(
        [
            'own="$(mktemp -d)" && sif="$own/app.sif"',
            # a cache of its own: the user's default cache would serve later pulls of the same image from it
            'APPTAINER_CACHEDIR="$own/cache" singularity "$SV_FLAG" pull "$sif" "$JARVICE_APP_IMAGE" || exit 1',
            'if singularity "$SV_FLAG" exec "$sif" /bin/sh -c "$JARVICE_CMD"; then echo JARVICE_CMD_SUCCESS; fi',
        ]
    )
    template = legacy_template(
        busybox_app(stamp=stamp), body=body, extra={"JOBOBJ_INTERACTIVE": "True", "JOBOBJ_REPO": image}
    )
    user = cluster.users["kirby"]
    bearer = cluster.idp.mint(email=user.email, user=user.name, audience="jarvice")
    status, answer = client.post("/submit", submit_args(name, 7, template, nodes=1, bearer=bearer))
    assert status == 200, answer
    return JobRef(name, 7, answer[0]), answer[1]
