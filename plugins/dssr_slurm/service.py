"""Interactive jobs on Slurm: the files their first node leaves, and tunnels to their service port.

Both go through the SSH connection the connector already holds to the login
node, as the service user, whatever the Slurm interface (slurmrestd sites
need SSH for this too): a file is read with one ``head``, a tunnel is an SSH
``direct-tcpip`` channel from the login node to the node's address
(``NodeAddr`` in slurm.conf, which defaults to the node's name).  The login
node's sshd must allow TCP forwarding for the service user.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING

from dssr_core import SERVICE_DIR, ClusterError, command
from dssr_core.batch import ServiceShell

#: seconds node addresses are reused before ``scontrol`` is asked again
ADDRESS_TTL = 60.0
_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FIELD = re.compile(r"(?:^|\s)(NodeName|NodeAddr)=(\S+)")


if TYPE_CHECKING:
    import paramiko


def read_job_file(shell: ServiceShell, job_dir: str, name: str, limit: int) -> str | None:
    """The text of ``<job_dir>/.dssr-service/<name>`` (at most ``limit`` bytes), None when it does not exist."""
    if not _FILE_NAME.match(name) or name.startswith("."):
        raise ValueError(f"not a plain file name: {name!r}")
    path = f"{job_dir}/{SERVICE_DIR}/{name}"
    result = shell.run(command("head", "-c", int(limit), "--", path))
    if result.rc != 0:
        if "No such file" in result.stderr or "Not a directory" in result.stderr:
            return None
        raise ClusterError(f"Reading {path} failed: {result.stderr.strip()[:300]}")
    return result.stdout


class NodeAddresses:
    """Node name -> the address Slurm reaches it at, from ``scontrol -o show node`` (cached)."""

    def __init__(self, shell: ServiceShell) -> None:
        self.shell = shell
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}
        self._read_at = float("-inf")

    def get(self, node: str) -> str:
        if not _NODE_NAME.match(node):
            raise ClusterError(f"{node!r} is not a node name.", transient=False)
        with self._lock:
            if node in self._addresses and time.monotonic() - self._read_at < ADDRESS_TTL:
                return self._addresses[node]
            self._addresses = self._read()
            self._read_at = time.monotonic()
            if node not in self._addresses:
                raise ClusterError(f"Slurm knows no node {node!r}.", transient=False)
            return self._addresses[node]

    def _read(self) -> dict[str, str]:
        result = self.shell.run(command("scontrol", "-o", "show", "node"))
        if result.rc != 0:
            raise ClusterError(f"scontrol show node failed: {result.stderr.strip()[:300]}")
        addresses: dict[str, str] = {}
        for line in result.stdout.splitlines():
            fields = {m[1]: m[2] for m in _FIELD.finditer(line)}
            if "NodeName" in fields:
                addresses[fields["NodeName"]] = fields.get("NodeAddr", fields["NodeName"])
        return addresses


def open_service(
    shell: ServiceShell, addresses: NodeAddresses, node: str, port: int, timeout: float
) -> paramiko.Channel:
    """An SSH ``direct-tcpip`` channel from the login node to ``node``:``port``."""
    return shell.pool.open_tunnel(shell.login, addresses.get(node), port, timeout=timeout)
