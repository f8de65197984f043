"""The hypothesis fuzzer (tests/fuzz.py) against the real server on the Slurm connector and the real cluster."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

from tests.cluster import Cluster
from tests.fuzz import Fuzzer, run_fuzz
from tests.slurm.cluster_support import Server, serve, slurm_env

pytestmark = pytest.mark.cluster

#: random requests per endpoint group, after the sweep of a few values of each known-bad class
EXAMPLES = 40


@pytest.fixture(scope="module")
def server(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(slurm_env(slurm_cluster, tmp_path_factory.mktemp("slurm-fuzz")))


def cancel_fuzz_jobs(cluster: Cluster) -> None:
    cluster.run(["scancel", "--name", ",".join(f"jarvice_fuzz-sub-{i}" for i in range(31))], user="root")


def test_no_endpoint_answers_5xx_non_json_an_amplified_answer_or_changes_state_on_a_4xx(
    server: Server, slurm_cluster: Cluster, tmp_path: Path
) -> None:
    url = urllib.parse.urlsplit(server.url)
    bearer = slurm_cluster.idp.mint(email="kirby@example.com", audience="jarvice")
    fuzzer = Fuzzer(url.hostname or "127.0.0.1", url.port or 80, bearer=bearer)
    started = time.monotonic()
    try:
        run_fuzz(fuzzer, EXAMPLES, few=True)
    finally:
        cancel_fuzz_jobs(slurm_cluster)
    print(f"fuzz on Slurm: {fuzzer.sent} requests in {time.monotonic() - started:.1f}s")
    assert fuzzer.sent >= 5 * EXAMPLES
