"""Submit to link, for each kind of interactive job, on the Slurm 26.05 cluster with the real Apptainer.

Run as root on the test bed, with that cluster up (``python -m tests.cluster up-2605``; it is
reused, never brought up or down here)::

    python benchmarks/submit_to_link.py [--runs N] [--interface ssh|http]

A dssr-server (legacy HTTP API, waitress) and its proxy run in this process, as a site runs them
(``--interface http``: jobs go in over slurmrestd v0.0.45).  Each run submits one job of each kind, the
app being the busybox test app (``tests/interactive/webapp.sh``), which marks the moment it starts
listening (a file's modification time, in the job's folder); ``info`` is asked every 0.2 s over HTTP:

* ``native``: a native job (the executor pulls and starts the container), image without ``/etc/NAE``;
* ``template, no /etc/NAE``: an upstream template that pulls the test registry's busybox image and runs
  ``singularity exec`` itself;
* ``template, /etc/NAE``: the same with ``dssr/nae:1`` (its ``url.txt`` and ``help.html``).

Prints, per kind, the median and the largest of: seconds from submission to the link, and seconds from
the app's own "listening" mark to the link (the issue-24 target: at most 5 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dssr_core import Identity  # noqa: E402 - needs the sys.path line above
from dssr_core.testing.contract import unique_name  # noqa: E402 - needs the sys.path line above
from tests.cluster import slurm2605  # noqa: E402 - needs the sys.path line above
from tests.interactive.sid_support import (  # noqa: E402 - needs the sys.path line above
    busybox_app,
    http_info,
    legacy_site,
    listening_since,
    template_submit,
)
from tests.interactive.support import end, interactive_spec, submit  # noqa: E402 - needs the sys.path line above

KINDS = ("native", "template, no /etc/NAE", "template, /etc/NAE")


def one(cluster: Any, server: Any, client: Any, kind: str) -> tuple[float, float]:
    """(submission to link, app listening to link) in seconds, for one job of ``kind``."""
    name = unique_name("b2link")
    started = time.time()
    if kind == "native":
        user = cluster.users["kirby"]
        token = cluster.idp.mint(email=user.email, user=user.name)  # slurmrestd submits with it
        who = Identity(email=user.email, username=user.name, claims={"sun": user.name}, token=token)
        spec = interactive_spec(
            cluster,
            nodes=1,
            name=name,
            identity=who,
            image=f"{cluster.images['public']}:1",
            command=busybox_app(stamp=True),
            url=None,
        )
        ref, _ = submit(server.downstream, spec)
    else:
        image = f"{cluster.images['nae']}:1" if kind == "template, /etc/NAE" else f"{cluster.images['public']}:1"
        ref, _ = template_submit(cluster, client, image, name)
    try:
        info = http_info(client, ref, timeout=120, every=0.2)
        if not info["url"]:
            raise RuntimeError(f"{kind}: no link within 120 s")
        return info["answered_at"] - started, info["answered_at"] - listening_since(cluster, name)
    finally:
        end(server.downstream, ref)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interface", choices=("ssh", "http"), default="ssh")
    args = parser.parse_args()
    with slurm2605.session_lock(shared=True):
        if not slurm2605.alive():
            print("cannot run: the Slurm 26.05 cluster is not up (python -m tests.cluster up-2605)")
            return 2
        cluster = slurm2605.load()
        assert cluster is not None
        extra: dict[str, str] = {}
        if args.interface == "http":
            extra = {
                "JARVICE_SLURM_INTERFACE": "http",
                "JARVICE_SLURMRESTD_ADDR": "http://127.0.0.1",
                "JARVICE_SLURMRESTD_PORT": cluster.restd_url.rsplit(":", 1)[1],
                "JARVICE_SLURMRESTD_API_VERSION": "v0.0.45",
                "JARVICE_SLURMRESTD_VIA_SSH": "false",
                "JARVICE_SLURMRESTD_TOKEN": cluster.token(cluster.service_user, 3600),
            }
        with tempfile.TemporaryDirectory() as tmp:
            site = legacy_site(cluster, Path(tmp), **extra)
            server, client, _ = next(site)
            try:
                figures: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
                one(cluster, server, client, "native")  # the first native pull fills the image cache: not counted
                for _ in range(args.runs):
                    for kind in KINDS:
                        figures[kind].append(one(cluster, server, client, kind))
            finally:
                next(site, None)
    print(f"submit to link, Slurm 26.05 + Apptainer, over {args.interface}, {args.runs} runs (median / max, s):")
    for kind, runs in figures.items():
        to_link = [r[0] for r in runs]
        after = [r[1] for r in runs]
        print(
            f"  {kind:<24} submit->link {statistics.median(to_link):5.2f} / {max(to_link):5.2f}   "
            f"listening->link {statistics.median(after):5.2f} / {max(after):5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
