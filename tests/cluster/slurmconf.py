"""What the three Slurm clusters share: slurm.conf, slurmdbd.conf and gres.conf, the private MariaDB behind
slurmdbd, the accounts in slurmdbd, and a probe of slurmrestd."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, Callable

from tests.cluster.accounts import ACCOUNTS, SERVICE_USER, USERS
from tests.cluster.base import HarnessError, group_exists, mkdir, sh, short_hostname, tail, write
from tests.cluster.daemons import spawn

NODE_CPUS, NODE_MEM_MB = 16, 16000
# The scale configuration of the 22.05 cluster (`python -m tests.cluster scale-on`, used by benchmarks/poll_cycle.py --scale):
# each node declared with 512 CPUs and 512 x DefMemPerCPU of memory (slurmd takes the declared values as they are:
# SlurmdParameters=config_overrides) and no per-job accounting poller (jobacct_gather/none), so this machine carries
# 1,000 sleeping jobs.  The test suite runs on the normal configuration; `scale-off` restores it.
SCALE_CPUS, SCALE_MEM_MB = 512, 512 * 256
SCALE_ACCT_GATHER = "jobacct_gather/none"
# GPUs per node of both clusters: Slurm's gres/gpu plugin insists on device files (a count-only gres.conf
# line is discarded), so the harness makes character devices with NVIDIA's major number 195 under STATE/dev (STATE/c2411/dev).
# slurmd only stat()s them (TaskPlugin=task/none: no device cgroup); no driver answers them and nothing opens them.
NODE_GPUS, GPU_DEVICE_MAJOR = 2, 195
MIN_JOB_AGE = 30
# the JWT keys in a cluster's root (24.11, 26.05), where Debian's Slurm looks for its configuration
IN_ROOT_JWT_KEY, IN_ROOT_JWKS = "/etc/slurm/jwt_hs256.key", "/etc/slurm/jwks.json"


def start_mariadb(state: Path, port: int) -> subprocess.Popen[bytes]:
    """The host's MariaDB (Debian 12), a private instance with its data, socket and log under ``state``."""
    datadir = mkdir(state / "mysql", 0o750, "mysql", "mysql")
    sockdir = mkdir(state / "mysqld", 0o755, "mysql", "mysql")
    logf = state / "log" / "mariadb-install.log"
    cp = subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=mysql",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    write(logf, cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise HarnessError(f"mariadb-install-db failed; see {logf}{tail(logf)}")
    write(state / "log" / "mariadb.log", "", 0o640, "mysql", "adm" if group_exists("adm") else "mysql")
    return spawn(
        "mariadb",
        [
            "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=mysql",
            f"--socket={sockdir}/mysqld.sock",
            f"--pid-file={sockdir}/mysqld.pid",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--log-error={state}/log/mariadb.log",
            "--innodb-buffer-pool-size=128M",
            "--innodb-lock-wait-timeout=900",
            "--max-connections=200",
        ],
        state=state,
    )


def mysql(sql: str, state: Path) -> None:
    sh(["mariadb", "--no-defaults", f"--socket={state}/mysqld/mysqld.sock", "-u", "root", "-e", sql])


def slurm_conf(
    *,
    cluster: str,
    ports: dict[str, int],
    paths: dict[str, Any],
    nodes: dict[str, str],
    ctld_ip: str,
    munge_socket: str | None = None,
    jwt_key: str = IN_ROOT_JWT_KEY,
    jwks: str = IN_ROOT_JWKS,
    gpus: int = 0,
    extra: str = "",
    scale: bool = False,
) -> str:
    """A slurm.conf; ``munge_socket``, ``jwt_key``, ``jwks``: where the daemons find them (by default the
    Debian places, as in the 24.11 and 26.05 roots)."""
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    cpus, mem = (SCALE_CPUS, SCALE_MEM_MB) if scale else (NODE_CPUS, NODE_MEM_MB)
    acct_gather = SCALE_ACCT_GATHER if scale else "jobacct_gather/linux"
    node_lines = "\n".join(
        f"NodeName={n} NodeAddr={a} NodeHostname={n} CPUs={cpus} RealMemory={mem}{gres} State=UNKNOWN"
        for n, a in nodes.items()
    )
    if gpus:
        extra = f"GresTypes=gpu\n{extra}"
    # AccountingStoragePass names the munge socket used towards slurmdbd (else the default one)
    auth_info = f"AuthInfo=socket={munge_socket}\nAccountingStoragePass={munge_socket}\n" if munge_socket else ""
    return f"""# Written by tests/cluster/slurmconf.py for the dssr test tier; removed by `python -m tests.cluster down`.
ClusterName={cluster}
SlurmctldHost={short_hostname()}({ctld_ip})
SlurmctldPort={ports["ctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
{auth_info}AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={jwt_key},jwks={jwks}
StateSaveLocation={paths["ctld_state"]}
SlurmdSpoolDir={paths["spool"]}/slurmd-%n
SlurmctldPidFile={paths["run"]}/slurmctld.pid
SlurmdPidFile={paths["run"]}/slurmd-%n.pid
SlurmctldLogFile={paths["log"]}/slurmctld.log
SlurmdLogFile={paths["log"]}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay in squeue for {MIN_JOB_AGE}s (Slurm's default is 300s), then only sacct knows them.
MinJobAge={MIN_JOB_AGE}
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MailProg=/bin/true
PrivateData=jobs
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost={ctld_ip}
AccountingStoragePort={ports["dbd"]}
AccountingStorageEnforce=associations
JobAcctGatherType={acct_gather}
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
{extra}
{node_lines}
PartitionName=debug Nodes={",".join(nodes)} Default=YES MaxTime=INFINITE State=UP
"""


def fake_gpus(dev_dir: Path, count: int, seen_as: str | None = None) -> str:
    """Character devices standing for ``count`` GPUs, and the gres.conf naming them (see NODE_GPUS).

    ``seen_as``: where slurmd finds ``dev_dir`` (inside the 24.11 chroot), if not at the same path."""
    mkdir(dev_dir, 0o755, 0, 0)
    for i in range(count):
        dev = dev_dir / f"gpu{i}"
        dev.unlink(missing_ok=True)
        os.mknod(dev, 0o600 | stat.S_IFCHR, os.makedev(GPU_DEVICE_MAJOR, i))
    where = seen_as or str(dev_dir)
    files = f"{where}/gpu[0-{count - 1}]" if count > 1 else f"{where}/gpu0"
    return (
        "# Written by tests/cluster/slurmconf.py: stand-in device files, no real GPU (see NODE_GPUS there).\n"
        f"AutoDetect=off\nName=gpu File={files}\n"
    )


def slurmdbd_conf(
    *,
    ports: dict[str, int],
    paths: dict[str, Any],
    db: str,
    password: str,
    dbd_ip: str,
    mysql_port: int,
    munge_socket: str | None = None,
    jwt_key: str = IN_ROOT_JWT_KEY,
    jwks: str = IN_ROOT_JWKS,
) -> str:
    auth_info = f"AuthInfo=socket={munge_socket}\n" if munge_socket else ""
    return f"""# Written by tests/cluster/slurmconf.py
AuthType=auth/munge
{auth_info}AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={jwt_key},jwks={jwks}
DbdHost={short_hostname()}
DbdAddr={dbd_ip}
DbdPort={ports["dbd"]}
SlurmUser=slurm
LogFile={paths["log"]}/slurmdbd.log
PidFile={paths["run"]}/slurmdbd.pid
DebugLevel=info
PrivateData=jobs
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={mysql_port}
StorageUser=slurm
StoragePass={password}
StorageLoc={db}
"""


def sacctmgr_setup(run: Callable[[list[str]], Any], cluster: str) -> None:
    """The cluster, the accounts and their users in slurmdbd; jarvice in every account and their coordinator."""
    run(["sacctmgr", "-i", "add", "cluster", cluster])
    run(
        [
            "sacctmgr",
            "-i",
            "add",
            "account",
            ",".join(ACCOUNTS),
            f"cluster={cluster}",
            "Description=dssr test",
            "Organization=dssr",
        ]
    )
    for account in ACCOUNTS:
        users = [u for u, a in USERS.items() if a == account]
        run(["sacctmgr", "-i", "add", "user", ",".join(users), f"account={account}", f"cluster={cluster}"])
    run(
        [
            "sacctmgr",
            "-i",
            "add",
            "user",
            SERVICE_USER,
            f"account={','.join(ACCOUNTS)}",
            f"DefaultAccount={ACCOUNTS[0]}",
            f"cluster={cluster}",
        ]
    )
    run(["sacctmgr", "-i", "add", "coordinator", f"account={','.join(ACCOUNTS)}", f"names={SERVICE_USER}"])


def rest_get(url: str, user: str, token: str, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body or b"{}")
        except ValueError:
            return e.code, {"raw": body.decode(errors="replace")}
