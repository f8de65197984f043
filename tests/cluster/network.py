"""The test networks: a bridge per cluster, each node in a network namespace ``dssr-<node>`` joined to it by a
veth pair (``dssrh-<node>`` on the host, ``eth0`` inside); UTS namespaces naming the nodes; lines of /etc/hosts.

Addresses are only those of the test networks (10.77/78/79.0.0/24) and loopback.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from tests.cluster.base import HarnessError, sh
from tests.cluster.ledger import Ledger


def netns_path(node: str) -> Path:
    return Path(f"/run/netns/dssr-{node}")


def netns_setup(nodes: dict[str, str], bridge: str, bridge_ip: str) -> None:
    """``bridge`` with ``bridge_ip``/24 (made when missing), and a fresh namespace for each of ``nodes``
    (name -> address) on it."""
    if sh(["ip", "link", "show", bridge], check=False, quiet_fail=True).returncode != 0:
        sh(["ip", "link", "add", bridge, "type", "bridge"])
        sh(["ip", "addr", "add", f"{bridge_ip}/24", "dev", bridge])
        sh(["ip", "link", "set", bridge, "up"])
    for node, addr in nodes.items():
        ns, veth = f"dssr-{node}", f"dssrh-{node}"
        if netns_path(node).exists():
            sh(["ip", "netns", "del", ns], check=False)
        sh(["ip", "link", "del", veth], check=False, quiet_fail=True)
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh(["ip", "link", "set", veth, "master", bridge, "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])


def netns_remove(nodes: list[str], bridge: str | None = None) -> None:
    """The namespaces and veths of ``nodes``, and ``bridge`` (when given); what is gone already is skipped."""
    for n in nodes:
        if netns_path(n).exists():
            sh(["ip", "netns", "del", f"dssr-{n}"], check=False)
        if sh(["ip", "link", "show", f"dssrh-{n}"], check=False, quiet_fail=True).returncode == 0:
            sh(["ip", "link", "del", f"dssrh-{n}"], check=False)
    if bridge is not None and sh(["ip", "link", "show", bridge], check=False, quiet_fail=True).returncode == 0:
        sh(["ip", "link", "del", bridge], check=False)


def netns_inodes(nodes: list[str]) -> set[int]:
    """The inodes of the nodes' network namespaces (a process whose /proc/<pid>/ns/net has one is ours)."""
    inodes = set()
    for n in nodes:
        try:
            inodes.add(os.stat(netns_path(n)).st_ino)
        except OSError:
            pass
    return inodes


def in_node(node: str, argv: list[str]) -> list[str]:
    """argv run in the node's network namespace (nsenter, not `ip netns exec`: that remounts
    /sys and breaks slurmd's cgroup detection) and in a UTS namespace named after the node."""
    return [
        "nsenter",
        f"--net={netns_path(node)}",
        "unshare",
        "--uts",
        "--",
        "sh",
        "-c",
        f"hostname {node} && exec {shlex.join(argv)}",
    ]


def make_uts(path: Path, name: str) -> None:
    """A persistent UTS namespace bound at ``path`` whose host name is ``name``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    sh(["unshare", f"--uts={path}", "hostname", name])


def add_hosts(lines: list[str], ledger: Ledger) -> None:
    """Append ``lines`` ("<address> <name> <tag>") to /etc/hosts, each recorded in ``ledger`` first; a name
    /etc/hosts already gives another address is an error (the file is left as it is)."""
    hosts = Path("/etc/hosts")
    text = hosts.read_text()
    for line in lines:
        name = line.split()[1]
        if any(name in ln.split()[1:] for ln in text.splitlines() if ln.strip() and not ln.startswith("#")):
            if line not in text.splitlines():
                raise HarnessError(f"/etc/hosts already names {name} otherwise: not changed")
            continue
        ledger.add("hosts_lines", line)
        text = text.rstrip("\n") + "\n" + line + "\n"
    _rewrite(hosts, text)


def remove_hosts(lines: list[str]) -> None:
    hosts = Path("/etc/hosts")
    kept = [ln for ln in hosts.read_text().splitlines() if ln not in lines]
    _rewrite(hosts, "\n".join(kept) + "\n")


def _rewrite(path: Path, text: str) -> None:
    with open(path, "r+") as f:  # in place: /etc/hosts may be a bind mount
        f.seek(0)
        f.write(text)
        f.truncate()
