"""The Slurm connector's description of its cluster.

The cluster is one
``scontrol -o -d show nodes; scontrol -o show partitions`` over SSH (``cli``), or
slurmrestd's ``GET nodes`` and ``GET partitions`` (``http``).
"""

from __future__ import annotations

import secrets

from dssr_core import ClusterError, ClusterInfo, command
from dssr_core.batch import ServiceShell

from .backend import SlurmBackend
from .resources import parse_scontrol

#: the exit status of the read when the job's output file does not exist
_MISSING = 3


class SlurmExtras:
    """Mixed into :class:`~dssr_slurm.connector.SlurmConnector`, whose parts it uses."""

    backend: SlurmBackend
    shell: ServiceShell

    def cluster(self) -> ClusterInfo:
        info = self.backend.cluster()
        if info is not None:
            return info
        marker = "--" + secrets.token_hex(8) + "--"
        result = self.shell.run(
            f"{command('scontrol', '-o', '-d', 'show', 'nodes')} && echo {marker} && "
            f"{command('scontrol', '-o', 'show', 'partitions')}"
        )
        nodes, found, partitions = result.stdout.partition(marker + "\n")
        if result.rc != 0 or not found:
            raise ClusterError(f"scontrol show nodes/partitions failed: {result.stderr.strip()[:300]}")
        return parse_scontrol(nodes, partitions)
