"""The test clusters: real Slurm 22.05, 24.11 and 26.05 (with Apptainer) and Grid Engine 8.1.9 on this machine.

The public face, for the tests, the benchmarks and ``python -m tests.cluster`` (docs/test-cluster.md):

* the Slurm 22.05 + 24.11 pair: ``up``, ``down``, ``status``, ``load``, ``alive``, ``session_lock``,
  ``set_scale_2205`` and the ``Cluster`` they hand out;
* the other kinds as modules with the same verbs: ``slurm2605`` and ``gridengine`` (``GECluster``);
* ``preflight`` (can a cluster be tried here, else why not), ``SessionLock``, ``HarnessError``, ``log``.
"""

from tests.cluster import gridengine, slurm2605
from tests.cluster.base import HarnessError, log
from tests.cluster.gridengine import GECluster
from tests.cluster.locks import SessionLock
from tests.cluster.model import Cluster, ClusterUser, TestIdP
from tests.cluster.packages import preflight
from tests.cluster.slurm import alive, down, load, save_logs, session_lock, status, up
from tests.cluster.slurm2205 import NODES, set_scale_2205
from tests.cluster.slurmconf import SCALE_CPUS

__all__ = [
    "NODES",
    "SCALE_CPUS",
    "Cluster",
    "ClusterUser",
    "GECluster",
    "HarnessError",
    "SessionLock",
    "TestIdP",
    "alive",
    "down",
    "gridengine",
    "load",
    "log",
    "preflight",
    "save_logs",
    "session_lock",
    "set_scale_2205",
    "slurm2605",
    "status",
    "up",
]
