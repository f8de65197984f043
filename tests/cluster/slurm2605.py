"""The third test cluster: Slurm 26.05 and the real Apptainer, in a Debian sid root.

    python -m tests.cluster up --kind 2605      # bring it up (independent of the 22.05 one); or: up-2605
    python -m tests.cluster down --kind 2605    # stop it and clean, also after a crash

Layout (see docs/test-cluster.md):

* a minbase Debian sid root built once by debootstrap and kept in
  ``/var/cache/dssr-test-cluster/sid-root`` (marker ``.dssr-complete``);
* every daemon enters it with :data:`ENTER` (``unshare --mount --pid --fork``,
  ``pivot_root``; not a chroot, which Apptainer refuses), with its own ``/dev``
  (a tmpfs with a mode-0666 ``fuse`` node, so unprivileged Apptainer can mount
  overlays; the machine's ``/dev`` is never touched);
* bridge ``dssrbr26`` 10.78.0.1: slurmctld :8817, slurmdbd :8819 on a private
  instance of the host's MariaDB (127.0.0.1:8306; sid's 11.8 fails slurmdbd's start-up check), two ``slurmd`` (snode1 10.78.0.11,
  snode2 10.78.0.12) in network + UTS namespaces, slurmrestd 127.0.0.1:8820
  (JWT), sshd 127.0.0.1:22605 (keys only), and two ``docker-registry``:
  a public one at 10.78.0.1:8850 and a private one (htpasswd) at 10.78.0.1:8851,
  holding busybox images the harness builds offline (registry.py);
* its users (jarvice, kirby, mario, dovahkiin) exist only in the root, with
  uids from 26000, so nothing of the 22.05 cluster's teardown can reach them.

State: ``/run/dssr-sid-cluster`` (seen at /var/lib/dssr in the root), scratch
``/var/tmp/dssr-sid-cluster`` (the same path in the root). Lock:
``/var/cache/dssr-test-cluster/sid-session.lock``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cluster import accounts, daemons, images, network, packages, registry, slurmconf, sshd, state
from tests.cluster.accounts import SERVICE_USER, USERS
from tests.cluster.base import SYS_PATH, HarnessError, log, mkdir, port_open, sh, short_hostname, wait_for, write
from tests.cluster.images import need
from tests.cluster.locks import LOCK_2605, SessionLock
from tests.cluster.model import Cluster
from tests.cluster.registry import IMAGES_VERSION
from tests.cluster.registry import NAE_FILES as NAE_FILES  # the tests read the images' files here

ROOT = state.CACHE / "sid-root"
STATE = state.STATE_2605
DATA = state.DATA_2605
SCRATCH = DATA / "jxe_scratch"
STATE_FILE = STATE / "cluster.json"
ENTER = STATE / "enter"
IN_ROOT_STATE = "/var/lib/dssr"

KEY = "slurm-26.05"
CLUSTER_NAME = "dssr2605"
BRIDGE, BRIDGE_IP = "dssrbr26", "10.78.0.1"
NODES = {"snode1": "10.78.0.11", "snode2": "10.78.0.12"}
PORTS = {"ctld": 8817, "slurmd": 8818, "dbd": 8819, "restd": 8820, "ssh": 22605, "mysql": 8306,
         "registry": 8850, "private_registry": 8851}  # fmt: skip
UID_BASE = 26000
REGISTRY = f"{BRIDGE_IP}:{PORTS['registry']}"
PRIVATE_REGISTRY = f"{BRIDGE_IP}:{PORTS['private_registry']}"
#: in the environment of every daemon of this cluster, so ``down`` finds them even when their pidfiles are gone
MARK = "DSSR_TEST_CLUSTER=2605"

#: what each step needs from sid; a failure of that step names the package
PACKAGES = {
    "apptainer": "apptainer", "squashfs-tools": "mksquashfs",
    # writable overlay images of unprivileged Apptainer: made by mkfs.ext3, mounted by fuse2fs + fuse-overlayfs
    "e2fsprogs": "mkfs.ext3", "fuse2fs": "fuse2fs", "fuse-overlayfs": "fuse-overlayfs",
    "slurmctld": "slurmctld", "slurmd": "slurmd", "slurmrestd": "slurmrestd", "slurm-client": "sbatch",
    "slurmdbd": "slurmdbd", "slurm-wlm-jwt-plugin": "jwt", "munge": "munged", "openssh-server": "sshd",
    "docker-registry": "docker-registry", "apache2-utils": "htpasswd", "skopeo": "skopeo", "umoci": "umoci",
    "busybox-static": "busybox", "iproute2": "ip", "procps": "ps",
}  # fmt: skip
SID_PACKAGES = ",".join(PACKAGES)

CORE = ["mariadb", "munged", "slurmdbd", "slurmctld", "slurmrestd", "sshd", "registry", "private-registry",
        *[f"slurmd-{n}" for n in NODES]]  # fmt: skip

# The way into the root: own mount + PID namespace, pivot_root (Apptainer aborts in a "weak chroot"),
# fresh /proc, the host's /sys, an own /dev (tmpfs, 0666 fuse node), a 1777 tmpfs on /tmp, the state dir
# and scratch bound in. Everything after "$@" runs as PID 1 of the new namespace: killing the unshare
# (--kill-child) ends it and all it started.
ENTER_SCRIPT = r"""#!/bin/sh
# Written by tests/cluster/slurm2605.py: run "$@" inside the Debian sid root of the 26.05 test cluster.
exec unshare --mount --pid --fork --kill-child -- /bin/sh -eu -c '
root=$1 state=$2 data=$3; shift 3
mount --make-rprivate /
mount --bind "$root" "$root"
cd "$root"
mount -t proc proc proc
mount --rbind /sys sys
mount -t tmpfs -o mode=0755,size=4m,nosuid dssr-dev dev
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0" "fuse 10 229"; do
    set -- $n "$@"; mknod -m 0666 "dev/$1" c "$2" "$3"; shift 3
done
mkdir dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts dev/pts
ln -s pts/ptmx dev/ptmx; ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin; ln -s /proc/self/fd/1 dev/stdout; ln -s /proc/self/fd/2 dev/stderr
mount -t tmpfs -o mode=1777 dssr-shm dev/shm
mount -t tmpfs -o mode=1777 dssr-tmp tmp
mount --bind "$state" ./var/lib/dssr
mount --bind "$data" ".$data"
pivot_root . oldroot
umount -l /oldroot
exec chroot . "$@"
' dssr-enter ROOT STATE DATA "$@"
"""


def enter(argv: list[str]) -> list[str]:
    return [str(ENTER), *argv]


def _enter_script() -> str:
    return ENTER_SCRIPT.replace(" ROOT STATE DATA ", f" {ROOT} {STATE} {DATA} ")


def ensure_root() -> float:
    return images.debootstrap_root(ROOT, "sid", SID_PACKAGES)


def _id(name: str, file: str = "passwd") -> int:
    return accounts.root_id(name, file, ROOT)


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    key, value = MARK.split("=")
    return daemons.spawn(name, argv, state=STATE, env={**(env or {"PATH": SYS_PATH, "LANG": "C.UTF-8"}), key: value})


def _ours() -> set[int]:
    """Daemons of this cluster (pidfiles, MARK), everything in their PID namespaces and the nodes' network
    namespaces, and all below them."""
    pids = daemons.pidfile_pids(STATE)
    net = network.netns_inodes(list(NODES))
    mark = MARK.encode() + b"\0"
    for pid in daemons.all_pids():
        try:
            if daemons.ns_inode(pid, "net") in net or mark in Path(f"/proc/{pid}/environ").read_bytes():
                pids.add(pid)
        except OSError:
            pass
    mine = daemons.ns_inode("self", "pid")
    pidns = {ns for pid in daemons.with_descendants(pids) if (ns := daemons.ns_inode(pid, "pid")) not in (None, mine)}
    pids |= {pid for pid in daemons.all_pids() if daemons.ns_inode(pid, "pid") in pidns}
    return daemons.with_descendants(pids)


def _layout() -> None:
    for d, mode in [
        (STATE, 0o755),
        (STATE / "keys", 0o700),
        (STATE / "ssh", 0o755),
        (STATE / "authorized_keys", 0o755),
        (STATE / "pids", 0o700),
        (STATE / "log", 0o755),
    ]:
        mkdir(d, mode, 0, 0)
    write(ENTER, _enter_script(), 0o755)
    for rel in ("var/lib/dssr", str(DATA).lstrip("/"), "oldroot", "run/sshd"):
        mkdir(ROOT / rel, 0o755, 0, 0)
    mkdir(DATA, 0o755, 0, 0)
    slurm = (_id("slurm"), _id("slurm", "group"))
    for sub, mode, o in [
        ("log", 0o755, slurm),
        ("run", 0o755, (slurm[0], 0)),
        ("spool", 0o755, (0, 0)),
        ("slurmctld", 0o700, slurm),
        ("registry", 0o755, (0, 0)),
        *[(f"spool/slurmd-{n}", 0o755, (0, 0)) for n in NODES],
    ]:
        mkdir(STATE / sub, mode, *o)
    os.chmod(STATE / "log", 0o777 | 0o1000)  # daemons of several users log here
    hosts = "".join(f"{a} {n}\n" for n, a in NODES.items())
    write(ROOT / "etc/hosts", f"127.0.0.1 localhost\n{BRIDGE_IP} {short_hostname()}\n{hosts}")


def _slurm_files(hs256: bytes, jwks: dict[str, Any], db_pass: str) -> None:
    slurm_uid, slurm_gid = _id("slurm"), _id("slurm", "group")
    etc = ROOT / "etc/slurm"
    write(etc / "jwt_hs256.key", hs256, 0o600, slurm_uid, slurm_gid)
    write(etc / "jwks.json", json.dumps(jwks, indent=1), 0o644)
    paths = {k: f"{IN_ROOT_STATE}/{v}" for k, v in {"ctld_state": "slurmctld", "spool": "spool", "run": "run",
                                                    "log": "log"}.items()}  # fmt: skip
    conf = slurmconf.slurm_conf(cluster=CLUSTER_NAME, ports=PORTS, paths=paths, nodes=NODES, ctld_ip=BRIDGE_IP)
    write(etc / "slurm.conf", conf, 0o644)
    write(etc / "cgroup.conf", "CgroupPlugin=disabled\n", 0o644)
    dbd = slurmconf.slurmdbd_conf(ports=PORTS, paths=paths, db="slurm_acct_db_2605", password=db_pass,
                                  dbd_ip=BRIDGE_IP, mysql_port=PORTS["mysql"])  # fmt: skip
    write(etc / "slurmdbd.conf", dbd, 0o600, slurm_uid, slurm_gid)


def _munged(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """munge: own key, default socket inside the root."""
    munge_uid, munge_gid = _id("munge"), _id("munge", "group")
    for rel in ("run/munge", "var/lib/munge", "var/log/munge", "etc/munge"):
        mkdir(ROOT / rel, 0o755 if rel == "run/munge" else 0o700, munge_uid, munge_gid)
    write(ROOT / "etc/munge/munge.key", secrets.token_bytes(1024), 0o400, munge_uid, munge_gid)
    (ROOT / "run/munge/munge.socket.2").unlink(missing_ok=True)
    setpriv = ["setpriv", f"--reuid={munge_uid}", f"--regid={munge_gid}", "--clear-groups"]
    return _spawn("munged", enter([*setpriv, "/usr/sbin/munged", "-F"]), env=env)


def _sshd(env: dict[str, str]) -> tuple[str, Path, subprocess.Popen[bytes]]:
    """Users' and the service account's ssh keys, sshd's host key, sshd: (host key, known_hosts, process)."""
    accounts.user_keys(STATE / "keys", STATE / "authorized_keys", "dssr-test-2605", True, False)
    ssh = STATE / "ssh"
    host_pub, known_hosts = sshd.host_key(ssh, "dssr-test-2605-host", PORTS["ssh"])
    config = sshd.sshd_config(
        port=PORTS["ssh"],
        host_key=f"{IN_ROOT_STATE}/ssh/ssh_host_ed25519_key",
        pid_file="none",
        authorized_keys=f"{IN_ROOT_STATE}/authorized_keys",
        slurm_conf="/etc/slurm/slurm.conf",
    )
    write(ssh / "sshd_config", config, 0o644)
    argv = ["/usr/sbin/sshd", "-D", "-f", f"{IN_ROOT_STATE}/ssh/sshd_config", "-E", f"{IN_ROOT_STATE}/log/sshd.log"]
    return host_pub, known_hosts, _spawn("sshd", enter(argv), env=env)


def up() -> Cluster:
    why = packages.preflight()
    if why:
        raise HarnessError(f"cluster tier: {why}")
    packages.ensure_packages()
    if STATE.exists() or DATA.exists():
        log("26.05: leftovers of an earlier run: cleaning first")
        down()
    t0 = time.monotonic()
    built = ensure_root()
    _layout()
    uids = accounts.own_in_root(ROOT, UID_BASE)
    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": "/etc/slurm/slurm.conf"}
    # MariaDB: a private instance of the host's own (Slurm 26.05's slurmdbd fails its start-up check on sid's
    # MariaDB 11.8: "select @var := concat('')" -> "Number of columns in result ... exceeds maximum (=0)")
    maria = slurmconf.start_mariadb(STATE, PORTS["mysql"])
    munged = _munged(env)
    host_pub, known_hosts, sshd_p = _sshd(env)
    keys = STATE / "keys"
    hs256 = secrets.token_bytes(48)
    idp = accounts.make_idp(keys)
    db_pass = secrets.token_hex(16)
    _slurm_files(hs256, idp.jwks, db_pass)

    # the test network and the registries (they listen on the bridge)
    network.netns_setup(NODES, BRIDGE, BRIDGE_IP)
    addresses = (REGISTRY, PRIVATE_REGISTRY)
    reg_pass, registries = registry.start(STATE, IN_ROOT_STATE, addresses, enter, _spawn, env)
    wait_for(need("munge", "munged"), lambda: (ROOT / "run/munge/munge.socket.2").exists(), 20,
             STATE / "log" / "munged.out", [munged])  # fmt: skip
    wait_for("the host's mariadb", lambda: (STATE / "mysqld/mysqld.sock").exists()
             and port_open("127.0.0.1", PORTS["mysql"]), 90, STATE / "log" / "mariadb.log", [maria])  # fmt: skip
    slurmconf.mysql(
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_pass}';"
        f"GRANT ALL ON slurm_acct_db_2605.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;",
        STATE,
    )
    dbd = _spawn("slurmdbd", enter(["/usr/sbin/slurmdbd", "-D"]), env=env)
    wait_for(need("slurmdbd", "26.05 slurmdbd"), lambda: port_open(BRIDGE_IP, PORTS["dbd"]), 90,
             STATE / "log" / "slurmdbd.log", [dbd])  # fmt: skip
    slurmconf.sacctmgr_setup(lambda argv: sh(enter(argv), env=env), CLUSTER_NAME)
    ctld = _spawn("slurmctld", enter(["/usr/sbin/slurmctld", "-D"]), env=env)
    ping = functools.partial(sh, enter(["scontrol", "ping"]), env=env, check=False, quiet_fail=True)
    wait_for(need("slurmctld", "26.05 slurmctld"), lambda: "UP" in ping().stdout, 40, STATE / "log" / "slurmctld.log",
             [ctld])  # fmt: skip
    slurmd = [_spawn(f"slurmd-{n}", network.in_node(n, enter(["/usr/sbin/slurmd", "-D", "-N", n])), env=env)
              for n in NODES]  # fmt: skip
    restd_argv = ["/usr/sbin/slurmrestd", "-a", "rest_auth/jwt", "-s", "slurmctld,slurmdbd", "-u", "65534",
                  "-g", "65534", f"127.0.0.1:{PORTS['restd']}"]  # fmt: skip
    restd = _spawn("slurmrestd", enter(restd_argv), env={**env, "SLURM_JWT": "daemon"})
    for name, port, p, out in (
        ("docker-registry", PORTS["registry"], registries[0], "registry.out"),
        ("docker-registry (htpasswd)", PORTS["private_registry"], registries[1], "private-registry.out"),
    ):
        wait_for(need("docker-registry", name), functools.partial(port_open, BRIDGE_IP, port), 30,
                 STATE / "log" / out, [p])  # fmt: skip
    registry.push_images(STATE, enter, env, addresses, reg_pass)

    def nodes_idle() -> bool:
        cp = sh(enter(["sinfo", "-h", "-N", "-o", "%N %T"]), env=env, check=False, quiet_fail=True)
        stt = dict(ln.split() for ln in cp.stdout.splitlines() if ln.strip())
        return all(stt.get(n) == "idle" for n in NODES)

    wait_for(need("slurmd", "26.05 nodes idle"), nodes_idle, 60, STATE / "log" / "slurmctld.log", [ctld, *slurmd])
    wait_for(need("slurmrestd", "26.05 slurmrestd"), lambda: port_open("127.0.0.1", PORTS["restd"]), 30,
             STATE / "log" / "slurmrestd.out", [restd])  # fmt: skip
    wait_for(need("openssh-server", "26.05 sshd"), lambda: port_open("127.0.0.1", PORTS["ssh"]), 20,
             STATE / "log" / "sshd.out", [sshd_p])  # fmt: skip
    version = sh(enter(["sinfo", "-V"]), env=env).stdout.split()[-1]
    apptainer = sh(enter(["apptainer", "--version"]), env=env).stdout.split()[-1]
    cluster = Cluster(
        name=KEY, cluster_name=CLUSTER_NAME, host="127.0.0.1", ssh_port=PORTS["ssh"],
        ssh_host_fingerprint=accounts.fingerprint(host_pub), known_hosts=known_hosts, service_user=SERVICE_USER,
        users=accounts.cluster_users(keys, uids), jarvice_key=keys / f"{SERVICE_USER}_ed25519",
        jarvice_rsa_key=keys / f"{SERVICE_USER}_rsa", jarvice_ecdsa_key=keys / f"{SERVICE_USER}_ecdsa",
        nodes=list(NODES), partition="debug", scratch=_scratch(uids), scratch_acl=None,
        scratch_acl_note="the 26.05 cluster has no ACL scratch", restd_url=f"http://127.0.0.1:{PORTS['restd']}",
        rest_versions=[], slurm_version=version, jwt_hs256_key=hs256, idp=idp,
        slurm_conf=Path("/etc/slurm/slurm.conf"), chroot=ROOT, state_dir=STATE, log_dir=STATE / "log",
        min_job_age=slurmconf.MIN_JOB_AGE, ports=dict(PORTS), enter=ENTER, apptainer_version=apptainer,
        registry=REGISTRY, private_registry=PRIVATE_REGISTRY, registry_credentials=(registry.REGISTRY_USER, reg_pass),
        images=registry.images(addresses),
    )  # fmt: skip
    cluster = _with_rest_versions(cluster)
    dead = [n for n, ok in status()["daemons"].items() if not ok]
    if dead:
        raise HarnessError(f"26.05 daemons exited during start-up: {', '.join(dead)}; see {STATE / 'log'}")
    state.update(STATE_FILE, {KEY: cluster.to_json(), "images_version": IMAGES_VERSION})
    log(
        f"Slurm {version} + Apptainer {apptainer} cluster up in {time.monotonic() - t0:.1f}s (sid root build {built:.1f}s)"
    )
    return cluster


def _with_rest_versions(cluster: Cluster) -> Cluster:
    """The data parser versions slurmrestd offers, read from its /openapi/v3."""
    code, doc = slurmconf.rest_get(f"{cluster.restd_url}/openapi/v3", SERVICE_USER, cluster.token(SERVICE_USER), 30)
    if code != 200:
        raise HarnessError(need("slurmrestd", f"slurmrestd /openapi/v3 answered {code}"))
    found = {m.group(1) for p in doc.get("paths", {}) for m in [re.match(r"^/slurm/(v[0-9.]+)/", p)] if m}
    versions = sorted(found, key=lambda v: tuple(int(x) for x in v[1:].split(".")))
    return dataclasses.replace(cluster, rest_versions=versions)


def _scratch(uids: dict[str, int]) -> Path:
    """The seed's layout: images/ and cache/ shared, users/<user> owned by each user, group-shared with jarvice."""
    mkdir(SCRATCH, 0o755, 0, 0)
    mkdir(SCRATCH / "images", 0o1777, 0, 0)
    mkdir(SCRATCH / "cache", 0o1777, 0, 0)
    mkdir(SCRATCH / "users", 0o755, 0, 0)
    for u in USERS:
        mkdir(SCRATCH / "users" / u, 0o2770, uids[u], uids[u])
    return SCRATCH


# --------------------------------------------------------------------------- status / load / down
def status() -> dict[str, Any]:
    d: dict[str, Any] = {
        "state_file": STATE_FILE.exists(),
        "daemons": {n: daemons.pidfile_alive(n, STATE) for n in CORE},
    }
    d["alive_2605"] = d["state_file"] and all(d["daemons"].values())
    return d


def load() -> Cluster | None:
    record = state.entry(STATE_FILE, KEY)
    return None if record is None else Cluster.from_json(record)


def alive() -> bool:
    """Up, and its images are the ones this harness builds (else a reusing session brings it up anew)."""
    same_images = state.read(STATE_FILE).get("images_version") == IMAGES_VERSION
    return bool(status()["alive_2605"]) and same_images and load() is not None


def down() -> float:
    """Stop everything of the 26.05 cluster: its daemons (and so their namespaces), node namespaces, bridge,
    the accounts in the root, state and scratch. Safe after a crash; touches nothing of the other clusters."""
    t0 = time.monotonic()
    daemons.kill({p for p in _ours() if Path(f"/proc/{p}").exists()})
    network.netns_remove(list(NODES), BRIDGE)
    if (ROOT / ".dssr-complete").exists():
        accounts.drop_from_root(ROOT, homes=True)
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    dt = time.monotonic() - t0
    log(f"26.05 down in {dt:.1f}s")
    return dt


def save_logs() -> Path | None:
    return state.keep_logs("dssr-test-cluster-2605", {"": STATE / "log"})


def session_lock(shared: bool = False, timeout: float = 1200) -> SessionLock:
    return SessionLock(timeout=timeout, shared=shared, path=LOCK_2605)
