"""The Slurm 24.11 cluster ``dssr2411``: Debian 13's Slurm in a cached chroot, beside the 22.05 one.

slurmctld :7817, one slurmd ``tnode1`` (10.77.0.21) :7818 on the 22.05 cluster's bridge, slurmdbd :7819 on
the 22.05 cluster's MariaDB, slurmrestd 127.0.0.1:7820; users, scratch and sshd are the 22.05 cluster's.
Its per-run state lives in ``<22.05 state>/c2411``, bind-mounted at /var/lib/dssr in the chroot.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

from tests.cluster import accounts, daemons, images, network, scratch, slurmconf, state
from tests.cluster.base import SYS_PATH, log, mkdir, port_open, sh, short_hostname, wait_for, write
from tests.cluster.ledger import SLURM as LEDGER
from tests.cluster.model import Cluster
from tests.cluster.slurm2205 import BRIDGE, BRIDGE_IP, DATA, MYSQL_PORT, NODES, SSH_PORT, STATE, STATE_FILE
from tests.cluster.slurmconf import NODE_GPUS

KEY = "slurm-24.11"
CHROOT = state.CACHE / "trixie-root"
CHROOT_PACKAGES = "slurmctld,slurmd,slurmrestd,slurm-client,munge,slurm-wlm-jwt-plugin,slurmdbd"
TNODES = {"tnode1": "10.77.0.21"}
PORTS_2411 = {"ctld": 7817, "slurmd": 7818, "dbd": 7819, "restd": 7820}
CORE_2411 = [
    "c2411-munged",
    "c2411-slurmdbd",
    "c2411-slurmctld",
    "c2411-slurmrestd",
    *[f"c2411-slurmd-{n}" for n in TNODES],
]


def ensure_chroot() -> float:
    return images.debootstrap_root(CHROOT, "trixie", CHROOT_PACKAGES)


def _id(name: str, file: str = "passwd") -> int:
    return accounts.root_id(name, file, CHROOT)


def up_2411(host: Cluster) -> Cluster:
    """The 24.11 cluster beside the running 22.05 one ``host`` (its keys, users, IdP and sshd)."""
    t0 = time.monotonic()
    built = ensure_chroot()
    LEDGER.add("chroots", str(CHROOT))
    images.umount_under(CHROOT)
    st = mkdir(STATE / "c2411", 0o755, 0, 0)
    slurm_uid, slurm_gid = _id("slurm"), _id("slurm", "group")
    munge_uid, munge_gid = _id("munge"), _id("munge", "group")
    for d, mode, o in [
        ("log", 0o755, (slurm_uid, slurm_gid)),
        ("run", 0o755, (slurm_uid, 0)),
        ("spool", 0o755, (0, 0)),
        ("slurmctld", 0o700, (slurm_uid, slurm_gid)),
        *[(f"spool/slurmd-{n}", 0o755, (0, 0)) for n in TNODES],
    ]:
        mkdir(st / d, mode, *o)
    sh(["mount", "-t", "proc", "proc", str(CHROOT / "proc")])
    images.bind(CHROOT, "/sys", "/sys", recursive=True)
    images.bind(CHROOT, "/dev", "/dev", recursive=True)
    images.bind(CHROOT, str(DATA), str(DATA))
    images.bind(CHROOT, "/home", "/home")
    images.bind(CHROOT, str(st), "/var/lib/dssr")
    if scratch.install_standin(st / "standin") is not None:  # st is /var/lib/dssr in the chroot
        scratch.link_standin(CHROOT, "/var/lib/dssr/standin/apptainer", LEDGER)
    accounts.copy_into_root(CHROOT)
    write(
        CHROOT / "etc/hosts",
        f"127.0.0.1 localhost\n{BRIDGE_IP} {short_hostname()}\n"
        + "".join(f"{a} {n}\n" for n, a in {**NODES, **TNODES}.items()),
    )

    # munge: own key, own daemon, default socket inside the chroot
    for d in ("run/munge", "var/lib/munge", "var/log/munge", "etc/munge"):
        mkdir(CHROOT / d, 0o755 if d == "run/munge" else 0o700, munge_uid, munge_gid)
    write(CHROOT / "etc/munge/munge.key", secrets.token_bytes(1024), 0o400, munge_uid, munge_gid)
    (CHROOT / "run/munge/munge.socket.2").unlink(missing_ok=True)
    munged = _spawn(
        "c2411-munged", ["chroot", f"--userspec={munge_uid}:{munge_gid}", str(CHROOT), "/usr/sbin/munged", "-F"]
    )

    etc = CHROOT / "etc/slurm"
    write(etc / "jwt_hs256.key", host.jwt_hs256_key, 0o600, slurm_uid, slurm_gid)
    write(etc / "jwks.json", json.dumps(host.idp.jwks, indent=1), 0o644)
    paths = {
        "ctld_state": "/var/lib/dssr/slurmctld",
        "spool": "/var/lib/dssr/spool",
        "run": "/var/lib/dssr/run",
        "log": "/var/lib/dssr/log",
    }
    conf = slurmconf.slurm_conf(
        cluster="dssr2411", ports=PORTS_2411, paths=paths, nodes=TNODES, ctld_ip=BRIDGE_IP, gpus=NODE_GPUS
    )
    write(etc / "slurm.conf", conf, 0o644)
    write(etc / "gres.conf", slurmconf.fake_gpus(st / "dev", NODE_GPUS, seen_as="/var/lib/dssr/dev"), 0o644)
    write(etc / "cgroup.conf", "CgroupPlugin=disabled\n", 0o644)
    db_pass = (STATE / "etc" / "db_password").read_text().strip()
    dbd_conf = slurmconf.slurmdbd_conf(
        ports=PORTS_2411, paths=paths, db="slurm_acct_db_2411", password=db_pass, dbd_ip=BRIDGE_IP,
        mysql_port=MYSQL_PORT,
    )  # fmt: skip
    write(etc / "slurmdbd.conf", dbd_conf, 0o600, slurm_uid, slurm_gid)

    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": "/etc/slurm/slurm.conf"}
    croot = ["chroot", str(CHROOT)]
    logdir = st / "log"
    wait_for(
        "24.11 munged",
        lambda: (CHROOT / "run/munge/munge.socket.2").exists(),
        15,
        CHROOT / "var/log/munge/munged.log",
        [munged],
    )
    dbd = _spawn("c2411-slurmdbd", croot + ["/usr/sbin/slurmdbd", "-D"], env=env)
    wait_for("24.11 slurmdbd", lambda: port_open(BRIDGE_IP, PORTS_2411["dbd"]), 90, logdir / "slurmdbd.log", [dbd])
    slurmconf.sacctmgr_setup(lambda argv: sh(croot + argv, env=env), "dssr2411")
    ctld = _spawn("c2411-slurmctld", croot + ["/usr/sbin/slurmctld", "-D"], env=env)
    wait_for(
        "24.11 slurmctld",
        lambda: "UP" in sh(croot + ["scontrol", "ping"], env=env, check=False, quiet_fail=True).stdout,
        30,
        logdir / "slurmctld.log",
        [ctld],
    )
    network.netns_setup(TNODES, BRIDGE, BRIDGE_IP)
    slurmds = [
        _spawn(f"c2411-slurmd-{n}", network.in_node(n, [*croot, "/usr/sbin/slurmd", "-D", "-N", n]), env=env)
        for n in TNODES
    ]
    restd = _spawn(
        "c2411-slurmrestd",
        croot + ["/usr/sbin/slurmrestd", "-a", "rest_auth/jwt", "-s", "slurmctld,slurmdbd", "-u", "nobody",
                 "-g", "nogroup", f"127.0.0.1:{PORTS_2411['restd']}"],
        env={**env, "SLURM_JWT": "daemon"},
    )  # fmt: skip

    def nodes_idle() -> bool:
        cp = sh(croot + ["sinfo", "-h", "-N", "-o", "%N %T"], env=env, check=False, quiet_fail=True)
        stt = dict(ln.split() for ln in cp.stdout.splitlines() if ln.strip())
        return all(stt.get(n) == "idle" for n in TNODES)

    wait_for("24.11 node idle", nodes_idle, 45, logdir / "slurmctld.log", [ctld, *slurmds])
    wait_for(
        "24.11 slurmrestd",
        lambda: port_open("127.0.0.1", PORTS_2411["restd"]),
        20,
        STATE / "log" / "c2411-slurmrestd.out",
        [restd],
    )
    version = sh(croot + ["sinfo", "-V"], env=env).stdout.split()[-1]
    cluster = dataclasses.replace(
        host, name=KEY, cluster_name="dssr2411", nodes=list(TNODES),
        restd_url=f"http://127.0.0.1:{PORTS_2411['restd']}", rest_versions=["v0.0.40", "v0.0.41", "v0.0.42"],
        slurm_version=version, slurm_conf=Path("/etc/slurm/slurm.conf"), chroot=CHROOT, state_dir=st,
        log_dir=logdir, ports={**PORTS_2411, "ssh": SSH_PORT, "mysql": MYSQL_PORT},
    )  # fmt: skip
    state.update(STATE_FILE, {KEY: cluster.to_json()})
    log(f"Slurm {version} cluster up in {time.monotonic() - t0:.1f}s (chroot build {built:.1f}s)")
    return cluster


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return daemons.spawn(name, argv, state=STATE, env=env)


def down_2411() -> None:
    """Stop only the 24.11 cluster (its daemons, node namespace, chroot mounts)."""
    pids = set()
    for n in CORE_2411:
        try:
            pids.add(int(daemons.pidfile(n, STATE)["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    chroot_real = os.path.realpath(CHROOT)
    ns = network.netns_inodes(list(TNODES))
    for pid in daemons.all_pids():
        try:
            if os.readlink(f"/proc/{pid}/root").startswith(chroot_real) or daemons.ns_inode(pid, "net") in ns:
                pids.add(pid)
        except OSError:
            pass
    daemons.kill({p for p in pids if Path(f"/proc/{p}").exists()})
    for n in TNODES:
        sh(["ip", "netns", "del", f"dssr-{n}"], check=False, quiet_fail=True)
    images.umount_under(CHROOT)
    scratch.unlink_symlinks(LEDGER, under=CHROOT)
    state.drop(STATE_FILE, KEY)
