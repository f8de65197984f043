"""What the benchmarks share: run a measurement on the Slurm 22.05 test cluster, reused when it is up."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import cluster as testbed  # noqa: E402 - needs the sys.path line above


def on_cluster(measure: Callable[[testbed.Cluster, Path], int]) -> int:
    """``measure(cluster, workdir)`` under the session lock (no test session takes the cluster down
    meanwhile); a cluster brought up here is taken down afterwards.  Returns its exit status."""
    why = testbed.preflight()
    if why:
        print(f"cannot run: {why}")
        return 2
    with testbed.SessionLock():
        cluster = testbed.load("slurm-22.05") if testbed.alive("slurm-22.05") else None
        started_here = cluster is None
        cluster = cluster or testbed.up()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                return measure(cluster, Path(tmp))
        finally:
            if started_here:
                testbed.down()
