"""The Debian packages a cluster needs on the host: what is missing, whether a bring-up can be tried at all,
and installing them with no service starting."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterable

from tests.cluster import daemons
from tests.cluster.base import HarnessError, log, sh, write

#: the host's packages of the Slurm 22.05 cluster (and the tools the other clusters' bring-up uses)
DEBIAN_PACKAGES = [
    "slurmctld",
    "slurmd",
    "slurm-client",
    "munge",
    "slurmdbd",
    "mariadb-server",
    "slurmrestd",
    "slurm-wlm-jwt-plugin",
    "openssh-server",
    "acl",
    "iproute2",
    "debootstrap",
    "shellcheck",
]
# Debian services some of those packages would start; stopped if an install started them.
DEBIAN_SERVICES = ["mariadb", "munge", "slurmctld", "slurmd", "slurmdbd", "slurmrestd", "ssh"]
SERVICE_COMMANDS = ["mariadbd", "mysqld", "munged", "slurmctld", "slurmd", "slurmdbd", "slurmrestd", "sshd"]


def missing_packages(packages: Iterable[str] = DEBIAN_PACKAGES) -> list[str]:
    missing = []
    for pkg in packages:
        cp = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if cp.returncode != 0 or "install ok installed" not in cp.stdout:
            missing.append(pkg)
    return missing


def preflight(packages: Iterable[str] = DEBIAN_PACKAGES) -> str | None:
    """None when the cluster (or another root-and-Debian test needing ``packages``) can be attempted,
    else one line saying why not."""
    if os.geteuid() != 0:
        return f"needs root (uid {os.geteuid()})"
    if not Path("/etc/debian_version").exists() or shutil.which("dpkg-query") is None:
        return "needs Debian (dpkg/apt) for the Slurm packages"
    try:
        missing = missing_packages(packages)
    except OSError as e:
        return f"cannot query dpkg: {e}"
    if missing and shutil.which("apt-get") is None:
        return f"Debian packages missing and no apt-get: {' '.join(missing)}"
    if shutil.which("ip") is None and "iproute2" not in missing:
        return "no ip(8)"
    return None


def ensure_packages(packages: Iterable[str] = DEBIAN_PACKAGES) -> float:
    """apt-get install what is missing, with services kept from starting. Returns seconds spent."""
    missing = missing_packages(packages)
    if not missing:
        return 0.0
    t0 = time.monotonic()
    log(f"installing Debian packages: {' '.join(missing)}")
    before = daemons.service_pids(SERVICE_COMMANDS)
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        write(policy, "#!/bin/sh\n# dssr test cluster: no service starts during install\nexit 101\n", 0o755)
        made_policy = True
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            sh(["apt-get", "update", "-q"], timeout=600, env=env)
            sh(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], timeout=1200, env=env)
        except (HarnessError, subprocess.TimeoutExpired) as e:
            last = (str(e).strip().splitlines() or [""])[-1]
            raise HarnessError(f"Debian packages missing and not installable ({' '.join(missing)}): {last}") from e
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    # Anything a postinst started anyway: stop it (and keep it from starting at boot under systemd).
    if Path("/run/systemd/system").exists():
        for svc in DEBIAN_SERVICES:
            sh(["systemctl", "disable", "--now", svc], check=False, quiet_fail=True)
    daemons.kill(daemons.service_pids(SERVICE_COMMANDS) - before)
    dt = time.monotonic() - t0
    log(f"packages installed in {dt:.1f}s")
    return dt
