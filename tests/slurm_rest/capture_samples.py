#!/usr/bin/env python3
"""Record real slurmrestd answers into samples/<version>/*.json for the adapters' unit tests.

Run against the test clusters (``python -m tests.cluster up`` and, for v0.0.43-45,
``python -m tests.cluster up-2605`` first):

    python tests/slurm_rest/capture_samples.py [--refusals] [VERSION...]

``--refusals`` records only the answers about jobs no node can run (``*_never_runs.json``,
``*_part_config.json``), leaving the other samples as they are; ``--shape`` only what slurmrestd
says of the cluster's nodes and partitions (``nodes.json``, ``partitions.json``).

Each file holds ``{"status": <HTTP status>, "body": <JSON answer>}`` exactly as
slurmrestd sent it, except ``openapi.json`` which keeps only the path names.
Request bodies are built by the adapters under test.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from dssr_slurm.backend import BatchRequest  # noqa: E402 - needs the sys.path line above
from dssr_slurm.rest.versions import adapter_for  # noqa: E402 - needs the sys.path line above
from tests.cluster import Cluster, load, session_lock, slurm2605  # noqa: E402 - needs the sys.path line above

OUT = Path(__file__).resolve().parent / "samples"


def call(cluster: Cluster, method: str, path: str, user: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        cluster.restd_url + path,
        method=method,
        data=data,
        headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode()


def save(version: str, name: str, status: int, body: Any) -> None:
    folder = OUT / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"status": status, "body": body}, indent=1, sort_keys=True) + "\n")


def request(cluster: Cluster, name: str, script: str, **kw: Any) -> BatchRequest:
    workdir = f"{cluster.scratch}/users/kirby"
    return BatchRequest(
        name=f"jarvice_{name}",
        user="kirby",
        script=script,
        nodes=1,
        ntasks=1,
        exclusive=False,
        workdir=workdir,
        output=f"{workdir}/jarvice_{name}.out",
        partition=cluster.partition,
        environment={"SAMPLE": "1"},
        **kw,
    )


def capture(cluster: Cluster, version: str) -> None:
    adapter = adapter_for(version)
    service = cluster.token("jarvice")
    user_token = cluster.idp.mint(email="kirby@example.com", user="kirby")
    slurm, slurmdb = adapter.slurm, adapter.slurmdb
    status, body = call(cluster, "GET", "/openapi/v3", "jarvice", service)
    save(version, "openapi", status, {"paths": {p: {} for p in body.get("paths", {})}})
    save(version, "ping", *call(cluster, "GET", f"{slurm}/ping", "jarvice", service))
    tag = f"s{version[-2:]}"
    ids = {}
    for key, script, extra in (
        ("held", "#!/bin/bash\nsleep 5\n", {"hold": True, "time_limit": "00:05:00"}),
        ("running", "#!/bin/bash\nsleep 20\n", {"time_limit": "2"}),
        ("fails", "#!/bin/bash\necho failing\nexit 3\n", {}),
    ):
        status, body = call(
            cluster,
            "POST",
            f"{slurm}/job/submit",
            "kirby",
            user_token,
            adapter.submit_body(request(cluster, f"{tag}{key}", script, **extra)),
        )
        save(version, f"submit_{key}", status, body)
        ids[key] = str(body["job_id"])
    time.sleep(4)
    save(version, "jobs", *call(cluster, "GET", f"{slurm}/jobs", "jarvice", service))
    save(version, "job_running", *call(cluster, "GET", f"{slurm}/job/{ids['running']}", "jarvice", service))
    save(version, "job_unknown", *call(cluster, "GET", f"{slurm}/job/999999", "jarvice", service))
    bad = request(cluster, f"{tag}bad", "#!/bin/bash\ntrue\n")
    bad = BatchRequest(**{**bad.__dict__, "partition": "nosuchpartition"})
    save(
        version,
        "submit_bad_partition",
        *call(cluster, "POST", f"{slurm}/job/submit", "kirby", user_token, adapter.submit_body(bad)),
    )
    expired = cluster.idp.mint(email="kirby@example.com", user="kirby", lifespan=-30)
    save(
        version,
        "submit_expired_token",
        *call(
            cluster,
            "POST",
            f"{slurm}/job/submit",
            "kirby",
            expired,
            adapter.submit_body(request(cluster, f"{tag}exp", "#!/bin/bash\ntrue\n")),
        ),
    )
    save(
        version,
        "cancel_running",
        *call(cluster, "DELETE", f"{slurm}/job/{ids['running']}?signal=TERM", "jarvice", service),
    )
    save(
        version,
        "release_held",
        *call(cluster, "POST", f"{slurm}/job/{ids['held']}", "jarvice", service, adapter.release_body()),
    )
    time.sleep(12)
    save(version, "cancel_gone", *call(cluster, "DELETE", f"{slurm}/job/{ids['fails']}", "jarvice", service))
    save(version, "jobs_after", *call(cluster, "GET", f"{slurm}/jobs", "jarvice", service))
    save(version, "acct", *call(cluster, "GET", adapter.accounting_query(ids.values()), "jarvice", service))
    save(version, "acct_one", *call(cluster, "GET", f"{slurmdb}/job/{ids['fails']}", "jarvice", service))
    (OUT / version / "ids.json").write_text(json.dumps(ids, indent=1) + "\n")


def capture_refusals(cluster: Cluster, version: str) -> None:
    """A held job no node can run (more memory than a node has; more tasks than the partition has CPUs),
    released, then read back once slurmctld has looked at it."""
    adapter = adapter_for(version)
    service = cluster.token("jarvice")
    user_token = cluster.idp.mint(email="kirby@example.com", user="kirby")
    slurm, tag = adapter.slurm, f"s{version[-2:]}"
    refused = {}
    for key, extra in (("never_runs", {"memory_gb": 99999}), ("part_config", {"ntasks": 9999})):
        held = request(cluster, f"{tag}{key}", "#!/bin/bash\ntrue\n", hold=True, time_limit="00:05:00")
        held = BatchRequest(**{**held.__dict__, **extra})
        status, body = call(cluster, "POST", f"{slurm}/job/submit", "kirby", user_token, adapter.submit_body(held))
        jobid = str(body["job_id"])
        save(
            version,
            f"release_{key}",
            *call(cluster, "POST", f"{slurm}/job/{jobid}", "jarvice", service, adapter.release_body()),
        )
        time.sleep(4)
        save(version, f"job_{key}", *call(cluster, "GET", f"{slurm}/job/{jobid}", "jarvice", service))
        call(cluster, "DELETE", f"{slurm}/job/{jobid}", "jarvice", service)
        refused[key] = jobid
    (OUT / version / "refused_ids.json").write_text(json.dumps(refused, indent=1) + "\n")


def capture_shape(cluster: Cluster, version: str) -> None:
    """The cluster's nodes and partitions as the service user reads them (the submission check's source)."""
    adapter = adapter_for(version)
    service = cluster.token("jarvice")
    save(version, "nodes", *call(cluster, "GET", f"{adapter.slurm}/nodes", "jarvice", service))
    save(version, "partitions", *call(cluster, "GET", f"{adapter.slurm}/partitions", "jarvice", service))


#: the test cluster each version is recorded from (v0.0.39 is offered by none of them)
SOURCES = {
    "v0.0.38": "slurm-22.05",
    "v0.0.40": "slurm-24.11",
    "v0.0.41": "slurm-24.11",
    "v0.0.42": "slurm-24.11",
    "v0.0.43": "slurm-26.05",
    "v0.0.44": "slurm-26.05",
    "v0.0.45": "slurm-26.05",
}


def clusters() -> dict[str, Cluster]:
    """The test clusters that are up, by name."""
    up = (load("slurm-22.05"), load("slurm-24.11"), slurm2605.load())
    return {cluster.name: cluster for cluster in up if cluster is not None}


def main() -> None:
    args = sys.argv[1:]
    refusals_only, shape_only = "--refusals" in args, "--shape" in args
    wanted = [a for a in args if a not in ("--refusals", "--shape")] or list(SOURCES)
    unknown = [v for v in wanted if v not in SOURCES]
    if unknown:
        sys.exit(f"no test cluster offers {', '.join(unknown)}; recordable: {', '.join(SOURCES)}")
    # shared session locks: no test session takes a cluster down while its answers are recorded
    with session_lock(shared=True), slurm2605.session_lock(shared=True):
        up = clusters()
        for version in wanted:
            if SOURCES[version] not in up:
                sys.exit(f"{version} is recorded from the {SOURCES[version]} cluster, which is not up")
            cluster = up[SOURCES[version]]
            print("capturing", version, "from", cluster.restd_url)
            if not (refusals_only or shape_only):
                capture(cluster, version)
            if not shape_only:
                capture_refusals(cluster, version)
            capture_shape(cluster, version)


if __name__ == "__main__":
    main()
