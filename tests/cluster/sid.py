"""The third test cluster: Slurm 26.05 and the real Apptainer, in a Debian sid root.

    python tests/cluster/harness.py up-2605      # bring it up (independent of the 22.05 one)
    python tests/cluster/harness.py down-2605    # stop it and clean, also after a crash

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
  holding busybox images the harness builds offline (umoci, skopeo);
* its users (jarvice, kirby, mario, dovahkiin) exist only in the root, with
  uids from 26000, so nothing of the 22.05 cluster's teardown can reach them.

State: ``/run/dssr-sid-cluster`` (seen at /var/lib/dssr in the root), scratch
``/var/tmp/dssr-sid-cluster`` (the same path in the root). Lock:
``/var/cache/dssr-test-cluster/sid-session.lock``.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cluster import harness
from tests.cluster.harness import (
    CACHE,
    SERVICE_USER,
    SYS_PATH,
    USERS,
    Cluster,
    ClusterUser,
    HarnessError,
    log,
    mkdir,
    port_open,
    sh,
    wait_for,
    write,
)

ROOT = CACHE / "sid-root"
STATE = Path("/run/dssr-sid-cluster")
DATA = Path("/var/tmp/dssr-sid-cluster")
SCRATCH = DATA / "jxe_scratch"
STATE_FILE = STATE / "cluster.json"
LOCK_FILE = CACHE / "sid-session.lock"
ENTER = STATE / "enter"
IN_ROOT_STATE = "/var/lib/dssr"

KEY = "slurm-26.05"
CLUSTER_NAME = "dssr2605"
BRIDGE, BRIDGE_IP = "dssrbr26", "10.78.0.1"
NODES = {"snode1": "10.78.0.11", "snode2": "10.78.0.12"}
PORTS = {
    "ctld": 8817,
    "slurmd": 8818,
    "dbd": 8819,
    "restd": 8820,
    "ssh": 22605,
    "mysql": 8306,
    "registry": 8850,
    "private_registry": 8851,
}
UID_BASE = 26000
REGISTRY = f"{BRIDGE_IP}:{PORTS['registry']}"
PRIVATE_REGISTRY = f"{BRIDGE_IP}:{PORTS['private_registry']}"
PUBLIC_REPO, PRIVATE_REPO, NAE_REPO = "dssr/busybox", "dssr/private", "dssr/nae"
REGISTRY_USER = "dssr-puller"

#: what each step needs from sid; a failure of that step names the package
PACKAGES = {
    "apptainer": "apptainer",
    "squashfs-tools": "mksquashfs",
    # writable overlay images of unprivileged Apptainer: made by mkfs.ext3, mounted by fuse2fs + fuse-overlayfs
    "e2fsprogs": "mkfs.ext3",
    "fuse2fs": "fuse2fs",
    "fuse-overlayfs": "fuse-overlayfs",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurmrestd": "slurmrestd",
    "slurm-client": "sbatch",
    "slurmdbd": "slurmdbd",
    "slurm-wlm-jwt-plugin": "jwt",
    "munge": "munged",
    "openssh-server": "sshd",
    "docker-registry": "docker-registry",
    "apache2-utils": "htpasswd",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "busybox-static": "busybox",
    "iproute2": "ip",
    "procps": "ps",
}
SID_PACKAGES = ",".join(PACKAGES)

CORE = [
    "mariadb",
    "munged",
    "slurmdbd",
    "slurmctld",
    "slurmrestd",
    "sshd",
    "registry",
    "private-registry",
    *[f"slurmd-{n}" for n in NODES],
]

# The way into the root: own mount + PID namespace, pivot_root (Apptainer aborts in a "weak chroot"),
# fresh /proc, the host's /sys, an own /dev (tmpfs, 0666 fuse node), a 1777 tmpfs on /tmp, the state dir
# and scratch bound in. Everything after "$@" runs as PID 1 of the new namespace: killing the unshare
# (--kill-child) ends it and all it started.
ENTER_SCRIPT = r"""#!/bin/sh
# Written by tests/cluster/sid.py: run "$@" inside the Debian sid root of the 26.05 test cluster.
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


# --------------------------------------------------------------------------- the root
def ensure_root() -> float:
    return harness.debootstrap_root(ROOT, "sid", SID_PACKAGES)


def _id(name: str, file: str = "passwd") -> int:
    return harness._chroot_id(name, file, ROOT)


def _accounts() -> dict[str, int]:
    """The cluster's users in the root's own passwd/shadow/group (uids from UID_BASE); homes in the root."""
    names = [SERVICE_USER, *USERS]
    uids = {n: UID_BASE + i for i, n in enumerate(names)}
    lines: dict[str, list[str]] = {
        "passwd": [
            f"{n}:x:{u}:{u}:dssr test user {n}:/home/{n}:/bin/bash"
            for n, u in uids.items()
        ],
        # "*": no password, yet not locked ("!" makes sshd refuse key logins)
        "shadow": [f"{n}:*:20000:0:99999:7:::" for n in names],
        "group": [
            f"{n}:x:{u}:{SERVICE_USER if n != SERVICE_USER else ''}"
            for n, u in uids.items()
        ],
        "gshadow": [
            f"{n}:!::{SERVICE_USER if n != SERVICE_USER else ''}" for n in names
        ],
    }
    _drop_accounts()
    for fname, new in lines.items():
        p = ROOT / "etc" / fname
        st = p.stat()
        write(
            p,
            p.read_text().rstrip("\n") + "\n" + "\n".join(new) + "\n",
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid,
        )
    for n, u in uids.items():
        home = ROOT / "home" / n
        shutil.rmtree(home, ignore_errors=True)
        mkdir(home, 0o750, u, u)
        write(
            home / ".bashrc", "export SLURM_CONF=/etc/slurm/slurm.conf\n", 0o644, u, u
        )
    return uids


def _drop_accounts() -> None:
    names = {SERVICE_USER, *USERS}
    for fname in ("passwd", "shadow", "group", "gshadow"):
        p = ROOT / "etc" / fname
        if not p.exists():
            continue
        st = p.stat()
        kept = [
            ln for ln in p.read_text().splitlines() if ln.split(":")[0] not in names
        ]
        write(p, "\n".join(kept) + "\n", st.st_mode & 0o7777, st.st_uid, st.st_gid)
    for n in names:
        shutil.rmtree(ROOT / "home" / n, ignore_errors=True)


#: in the environment of every daemon of this cluster, so ``down`` finds them even when their pidfiles are gone
MARK = "DSSR_TEST_CLUSTER=2605"


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    key, value = MARK.split("=")
    return harness.spawn(
        name,
        argv,
        env={**(env or {"PATH": SYS_PATH, "LANG": "C.UTF-8"}), key: value},
        state=STATE,
    )


def _ours() -> set[int]:
    """Daemons of this cluster (pidfiles, MARK), everything in their PID namespaces and the nodes' network
    namespaces, and all below them."""
    pids: set[int] = set()
    for f in (STATE / "pids").glob("*.pid") if (STATE / "pids").exists() else []:
        try:
            pids.add(int(json.loads(f.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass
    net = {
        os.stat(f"/run/netns/dssr-{n}").st_ino
        for n in NODES
        if Path(f"/run/netns/dssr-{n}").exists()
    }
    mark = MARK.encode() + b"\0"
    for pid in harness._all_pids():
        try:
            if (
                os.stat(f"/proc/{pid}/ns/net").st_ino in net
                or mark in Path(f"/proc/{pid}/environ").read_bytes()
            ):
                pids.add(pid)
        except OSError:
            pass
    pidns = set()
    for pid in harness.with_descendants(pids):
        try:
            ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
        except OSError:
            continue
        if ns != os.stat("/proc/self/ns/pid").st_ino:
            pidns.add(ns)
    for pid in harness._all_pids():
        try:
            if os.stat(f"/proc/{pid}/ns/pid").st_ino in pidns:
                pids.add(pid)
        except OSError:
            pass
    return harness.with_descendants(pids)


def _need(package: str, what: str) -> str:
    return f"{what} (sid package {package!r} missing or changed)"


# --------------------------------------------------------------------------- images
#: files of the ``dssr/nae`` images besides busybox: a JARVICE app's ``/etc/NAE`` (its connect URL
#: template and help page). Tag 1: a web app on JARVICE_SERVICE_PORT; tag 2: a notebook on a fixed port.
NAE_FILES = {
    "1": {
        "etc/NAE/url.txt": "https://%PUBLICADDR%/?token=%RANDOM64%&password=%NIMBIXPASSWD%&job=%JOBNAME%\n",
        "etc/NAE/help.html": (
            "<h1>Test app of job %JOBNAME%</h1>\n<p>Started for %NIMBIXUSER%: open <a href=\"%CONNECTURL%\">the app</a>"
            " (password %NIMBIXPASSWD%).</p>\n"
        ),
    },
    "2": {"etc/NAE/url.txt": "https://%PUBLICADDR%:8888/?token=%RANDOM64%\n"},
}
#: what the images of a running cluster were built with: a cluster whose state says otherwise is not reused
IMAGES_VERSION = json.dumps(sorted(NAE_FILES.items()))
IMAGE_FILES = "image-files"

IMAGE_SCRIPT = r"""
set -eu
b=/var/lib/dssr/images
rm -rf "$b"; mkdir -p "$b"; cd "$b"
mk() {  # image $1 (marker /etc/dssr-image), tag $2 (/etc/dssr-tag: every tag has a layer of its own)
    t="$b/tree-$1-$2"; o="$b/oci-$1-$2"; u="$b/bundle-$1-$2"
    mkdir -p "$t/bin" "$t/etc" "$t/tmp" "$t/root" "$t/home" "$t/proc" "$t/sys" "$t/dev"
    cp /bin/busybox "$t/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$t/bin/$a"; done
    echo "$1" > "$t/etc/dssr-image"
    echo "$2" > "$t/etc/dssr-tag"
    echo "root:x:0:0:root:/root:/bin/sh" > "$t/etc/passwd"
    x="/var/lib/dssr/image-files/$1-$2"  # files of this image besides busybox (NAE_FILES)
    if [ -d "$x" ]; then cp -a "$x/." "$t/"; fi
    umoci init --layout "$o"
    umoci new --image "$o:base"
    umoci unpack --image "$o:base" "$u"
    cp -a "$t/." "$u/rootfs/"
    umoci repack --compress=gzip --image "$o:$2" "$u"
    umoci config --image "$o:$2" --config.cmd /bin/sh
}
for tag in 1 2 3 4; do
    mk public $tag
    skopeo copy -q --dest-tls-verify=false "oci:$b/oci-public-$tag:$tag" "docker://$REG/$PUB:$tag"
done
mk private 1
skopeo copy -q --dest-tls-verify=false --dest-creds "$CREDS" "oci:$b/oci-private-1:1" "docker://$PREG/$PRIV:1"
for tag in $NAE_TAGS; do
    mk nae $tag
    skopeo copy -q --dest-tls-verify=false "oci:$b/oci-nae-$tag:$tag" "docker://$REG/$NAE:$tag"
done
rm -rf "$b"
"""


def _registry_config(port: int, data: str, htpasswd: str | None) -> str:
    auth = (
        f"auth:\n  htpasswd:\n    realm: dssr-test\n    path: {htpasswd}\n"
        if htpasswd
        else ""
    )
    return (
        f"# Written by tests/cluster/sid.py\nversion: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {BRIDGE_IP}:{port}\n  secret: {secrets.token_hex(16)}\n{auth}"
    )


# --------------------------------------------------------------------------- up
def up() -> Cluster:
    why = harness.preflight()
    if why:
        raise HarnessError(f"cluster tier: {why}")
    harness.ensure_packages()
    if STATE.exists() or DATA.exists():
        log("26.05: leftovers of an earlier run: cleaning first")
        down()
    t0 = time.monotonic()
    built = ensure_root()
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
    slurm_uid, slurm_gid = _id("slurm"), _id("slurm", "group")
    munge_uid, munge_gid = _id("munge"), _id("munge", "group")
    for sub, mode, o in [
        ("log", 0o755, (slurm_uid, slurm_gid)),
        ("run", 0o755, (slurm_uid, 0)),
        ("spool", 0o755, (0, 0)),
        ("slurmctld", 0o700, (slurm_uid, slurm_gid)),
        ("registry", 0o755, (0, 0)),
        *[(f"spool/slurmd-{n}", 0o755, (0, 0)) for n in NODES],
    ]:
        mkdir(STATE / sub, mode, *o)
    os.chmod(STATE / "log", 0o777 | 0o1000)  # daemons of several users log here
    write(
        ROOT / "etc/hosts",
        f"127.0.0.1 localhost\n{BRIDGE_IP} {_ctld_host()}\n"
        + "".join(f"{a} {n}\n" for n, a in NODES.items()),
    )
    uids = _accounts()
    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": "/etc/slurm/slurm.conf"}

    # MariaDB: a private instance of the host's own (Slurm 26.05's slurmdbd fails its start-up check on sid's
    # MariaDB 11.8: "select @var := concat('')" -> "Number of columns in result ... exceeds maximum (=0)")
    maria = harness.start_mariadb(STATE, PORTS["mysql"])

    # munge: own key, default socket inside the root
    for rel in ("run/munge", "var/lib/munge", "var/log/munge", "etc/munge"):
        mkdir(ROOT / rel, 0o755 if rel == "run/munge" else 0o700, munge_uid, munge_gid)
    write(
        ROOT / "etc/munge/munge.key",
        secrets.token_bytes(1024),
        0o400,
        munge_uid,
        munge_gid,
    )
    (ROOT / "run/munge/munge.socket.2").unlink(missing_ok=True)
    munged = _spawn(
        "munged",
        enter(
            [
                "setpriv",
                f"--reuid={munge_uid}",
                f"--regid={munge_gid}",
                "--clear-groups",
                "/usr/sbin/munged",
                "-F",
            ]
        ),
        env=env,
    )

    # keys: users' and the service account's ssh keys, sshd's host key, JWT keys
    keys = STATE / "keys"
    for u in [SERVICE_USER, *USERS]:
        harness.keygen(keys / f"{u}_ed25519", "ed25519", f"{u}@dssr-test-2605")
        write(
            STATE / "authorized_keys" / u,
            (keys / f"{u}_ed25519.pub").read_text(),
            0o644,
            0,
            0,
        )
    harness.keygen(
        keys / f"{SERVICE_USER}_rsa",
        "rsa",
        f"{SERVICE_USER}-rsa@dssr-test-2605",
        "3072",
    )
    harness.keygen(
        keys / f"{SERVICE_USER}_ecdsa",
        "ecdsa",
        f"{SERVICE_USER}-ecdsa@dssr-test-2605",
        "256",
    )
    ssh = STATE / "ssh"
    harness.keygen(ssh / "ssh_host_ed25519_key", "ed25519", "dssr-test-2605-host")
    host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().strip()
    known_hosts = write(
        ssh / "known_hosts",
        f"[127.0.0.1]:{PORTS['ssh']} {' '.join(host_pub.split()[:2])}\n",
        0o644,
    )
    write(
        ssh / "sshd_config",
        harness.sshd_config(
            port=PORTS["ssh"],
            host_key=f"{IN_ROOT_STATE}/ssh/ssh_host_ed25519_key",
            pid_file="none",
            authorized_keys=f"{IN_ROOT_STATE}/authorized_keys",
            slurm_conf="/etc/slurm/slurm.conf",
        ),
        0o644,
    )
    sshd = _spawn(
        "sshd",
        enter(
            [
                "/usr/sbin/sshd",
                "-D",
                "-f",
                f"{IN_ROOT_STATE}/ssh/sshd_config",
                "-E",
                f"{IN_ROOT_STATE}/log/sshd.log",
            ]
        ),
        env=env,
    )
    hs256 = secrets.token_bytes(48)
    idp = harness.make_idp(keys)
    etc = ROOT / "etc/slurm"
    write(etc / "jwt_hs256.key", hs256, 0o600, slurm_uid, slurm_gid)
    write(etc / "jwks.json", json.dumps(idp.jwks, indent=1), 0o644)
    paths = {
        "ctld_state": f"{IN_ROOT_STATE}/slurmctld",
        "spool": f"{IN_ROOT_STATE}/spool",
        "run": f"{IN_ROOT_STATE}/run",
        "log": f"{IN_ROOT_STATE}/log",
    }
    write(
        etc / "slurm.conf",
        harness.slurm_conf(
            cluster=CLUSTER_NAME,
            ports=PORTS,
            paths=paths,
            nodes=NODES,
            munge_socket=None,
            jwt_key="/etc/slurm/jwt_hs256.key",
            jwks="/etc/slurm/jwks.json",
            ctld_ip=BRIDGE_IP,
        ),
        0o644,
    )
    write(etc / "cgroup.conf", "CgroupPlugin=disabled\n", 0o644)
    db_pass = secrets.token_hex(16)
    write(
        etc / "slurmdbd.conf",
        harness.slurmdbd_conf(
            ports=PORTS,
            paths=paths,
            munge_socket=None,
            jwt_key="/etc/slurm/jwt_hs256.key",
            jwks="/etc/slurm/jwks.json",
            db="slurm_acct_db_2605",
            password=db_pass,
            dbd_ip=BRIDGE_IP,
            mysql_port=PORTS["mysql"],
        ),
        0o600,
        slurm_uid,
        slurm_gid,
    )

    # the test network and the registries (they listen on the bridge)
    harness.netns_setup(NODES, bridge=BRIDGE, bridge_ip=BRIDGE_IP)
    reg_pass = secrets.token_urlsafe(18)
    reg = STATE / "registry"
    cp = subprocess.run(
        enter(["htpasswd", "-Bbn", REGISTRY_USER, reg_pass]),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )
    if cp.returncode != 0:
        raise HarnessError(
            _need("apache2-utils", f"htpasswd failed: {cp.stderr.strip()}")
        )
    write(reg / "htpasswd", cp.stdout, 0o644)
    write(
        reg / "public.yml",
        _registry_config(PORTS["registry"], f"{IN_ROOT_STATE}/registry/public", None),
    )
    write(
        reg / "private.yml",
        _registry_config(
            PORTS["private_registry"],
            f"{IN_ROOT_STATE}/registry/private",
            f"{IN_ROOT_STATE}/registry/htpasswd",
        ),
    )
    registries = [
        _spawn(
            name,
            enter(["docker-registry", "serve", f"{IN_ROOT_STATE}/registry/{conf}"]),
            env=env,
        )
        for name, conf in (
            ("registry", "public.yml"),
            ("private-registry", "private.yml"),
        )
    ]

    wait_for(
        _need("munge", "munged"),
        lambda: (ROOT / "run/munge/munge.socket.2").exists(),
        20,
        STATE / "log" / "munged.out",
        [munged],
    )
    wait_for(
        "the host's mariadb",
        lambda: (
            (STATE / "mysqld/mysqld.sock").exists()
            and port_open("127.0.0.1", PORTS["mysql"])
        ),
        90,
        STATE / "log" / "mariadb.log",
        [maria],
    )
    harness.mysql(
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_pass}';"
        f"GRANT ALL ON slurm_acct_db_2605.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;",
        STATE,
    )
    dbd = _spawn("slurmdbd", enter(["/usr/sbin/slurmdbd", "-D"]), env=env)
    wait_for(
        _need("slurmdbd", "26.05 slurmdbd"),
        lambda: port_open(BRIDGE_IP, PORTS["dbd"]),
        90,
        STATE / "log" / "slurmdbd.log",
        [dbd],
    )
    harness.sacctmgr_setup(lambda argv: sh(enter(argv), env=env), CLUSTER_NAME)
    ctld = _spawn("slurmctld", enter(["/usr/sbin/slurmctld", "-D"]), env=env)
    wait_for(
        _need("slurmctld", "26.05 slurmctld"),
        lambda: (
            "UP"
            in sh(
                enter(["scontrol", "ping"]), env=env, check=False, quiet_fail=True
            ).stdout
        ),
        40,
        STATE / "log" / "slurmctld.log",
        [ctld],
    )
    slurmds = [
        _spawn(
            f"slurmd-{n}",
            harness.in_node(n, enter(["/usr/sbin/slurmd", "-D", "-N", n])),
            env=env,
        )
        for n in NODES
    ]
    restd = _spawn(
        "slurmrestd",
        enter(
            [
                "/usr/sbin/slurmrestd",
                "-a",
                "rest_auth/jwt",
                "-s",
                "slurmctld,slurmdbd",
                "-u",
                "65534",
                "-g",
                "65534",
                f"127.0.0.1:{PORTS['restd']}",
            ]
        ),
        env={**env, "SLURM_JWT": "daemon"},
    )
    for name, port, p in (
        ("docker-registry", PORTS["registry"], registries[0]),
        ("docker-registry (htpasswd)", PORTS["private_registry"], registries[1]),
    ):
        wait_for(
            _need("docker-registry", name),
            functools.partial(port_open, BRIDGE_IP, port),
            30,
            STATE
            / "log"
            / f"{'registry' if p is registries[0] else 'private-registry'}.out",
            [p],
        )
    for tag, files in NAE_FILES.items():
        for rel, text in files.items():
            write(STATE / IMAGE_FILES / f"nae-{tag}" / rel, text, 0o644)
    cp = subprocess.run(
        enter(["/bin/sh", "-c", IMAGE_SCRIPT]),
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
        env={
            **env,
            "REG": REGISTRY,
            "PREG": PRIVATE_REGISTRY,
            "PUB": PUBLIC_REPO,
            "PRIV": PRIVATE_REPO,
            "NAE": NAE_REPO,
            "NAE_TAGS": " ".join(NAE_FILES),
            "CREDS": f"{REGISTRY_USER}:{reg_pass}",
        },
    )
    write(STATE / "log" / "images.log", cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise HarnessError(
            _need(
                "umoci/skopeo/busybox-static",
                "building or pushing the test images failed: "
                + (cp.stderr.strip().splitlines() or ["?"])[-1],
            )
        )

    def nodes_idle() -> bool:
        cp = sh(
            enter(["sinfo", "-h", "-N", "-o", "%N %T"]),
            env=env,
            check=False,
            quiet_fail=True,
        )
        stt = dict(ln.split() for ln in cp.stdout.splitlines() if ln.strip())
        return all(stt.get(n) == "idle" for n in NODES)

    wait_for(
        _need("slurmd", "26.05 nodes idle"),
        nodes_idle,
        60,
        STATE / "log" / "slurmctld.log",
        [ctld, *slurmds],
    )
    wait_for(
        _need("slurmrestd", "26.05 slurmrestd"),
        lambda: port_open("127.0.0.1", PORTS["restd"]),
        30,
        STATE / "log" / "slurmrestd.out",
        [restd],
    )
    wait_for(
        _need("openssh-server", "26.05 sshd"),
        lambda: port_open("127.0.0.1", PORTS["ssh"]),
        20,
        STATE / "log" / "sshd.out",
        [sshd],
    )
    version = sh(enter(["sinfo", "-V"]), env=env).stdout.split()[-1]
    apptainer = sh(enter(["apptainer", "--version"]), env=env).stdout.split()[-1]
    scratch = _scratch(uids)
    users = {
        u: ClusterUser(
            name=u,
            email=f"{u}@example.com",
            account=a,
            key_path=keys / f"{u}_ed25519",
            uid=uids[u],
        )
        for u, a in USERS.items()
    }
    cluster = Cluster(
        name=KEY,
        cluster_name=CLUSTER_NAME,
        host="127.0.0.1",
        ssh_port=PORTS["ssh"],
        ssh_host_fingerprint=harness.fingerprint(host_pub),
        known_hosts=known_hosts,
        service_user=SERVICE_USER,
        users=users,
        jarvice_key=keys / f"{SERVICE_USER}_ed25519",
        jarvice_rsa_key=keys / f"{SERVICE_USER}_rsa",
        jarvice_ecdsa_key=keys / f"{SERVICE_USER}_ecdsa",
        nodes=list(NODES),
        partition="debug",
        scratch=scratch,
        scratch_acl=None,
        scratch_acl_note="the 26.05 cluster has no ACL scratch",
        restd_url=f"http://127.0.0.1:{PORTS['restd']}",
        rest_versions=[],
        slurm_version=version,
        jwt_hs256_key=hs256,
        idp=idp,
        slurm_conf=Path("/etc/slurm/slurm.conf"),
        chroot=ROOT,
        state_dir=STATE,
        log_dir=STATE / "log",
        min_job_age=harness.MIN_JOB_AGE,
        ports=dict(PORTS),
        enter=ENTER,
        apptainer_version=apptainer,
        registry=REGISTRY,
        private_registry=PRIVATE_REGISTRY,
        registry_credentials=(REGISTRY_USER, reg_pass),
        images={
            "public": f"{REGISTRY}/{PUBLIC_REPO}",
            "private": f"{PRIVATE_REGISTRY}/{PRIVATE_REPO}",
            "nae": f"{REGISTRY}/{NAE_REPO}",
        },
    )
    cluster = _with_rest_versions(cluster)
    dead = [n for n, ok in status()["daemons"].items() if not ok]
    if dead:
        raise HarnessError(
            f"26.05 daemons exited during start-up: {', '.join(dead)}; see {STATE / 'log'}"
        )
    write(STATE_FILE, json.dumps({KEY: cluster.to_json(), "images_version": IMAGES_VERSION}, indent=1), 0o600)
    log(
        f"Slurm {version} + Apptainer {apptainer} cluster up in {time.monotonic() - t0:.1f}s "
        f"(sid root build {built:.1f}s)"
    )
    return cluster


def _with_rest_versions(cluster: Cluster) -> Cluster:
    """The data parser versions slurmrestd offers, read from its /openapi/v3."""
    import dataclasses
    import re as _re

    status, doc = harness.rest_get(
        f"{cluster.restd_url}/openapi/v3", SERVICE_USER, cluster.token(SERVICE_USER), 30
    )
    if status != 200:
        raise HarnessError(
            _need("slurmrestd", f"slurmrestd /openapi/v3 answered {status}")
        )
    versions = sorted(
        {
            m.group(1)
            for p in doc.get("paths", {})
            for m in [_re.match(r"^/slurm/(v[0-9.]+)/", p)]
            if m
        },
        key=lambda v: tuple(int(x) for x in v[1:].split(".")),
    )
    return dataclasses.replace(cluster, rest_versions=versions)


def _ctld_host() -> str:
    import socket

    return socket.gethostname().split(".")[0]


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
        "daemons": {n: harness._pidfile_alive(n, STATE) for n in CORE},
    }
    d["alive_2605"] = d["state_file"] and all(d["daemons"].values())
    return d


def load() -> Cluster | None:
    try:
        return Cluster.from_json(json.loads(STATE_FILE.read_text())[KEY])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def alive() -> bool:
    """Up, and its images are the ones this harness builds (else a reusing session brings it up anew)."""
    try:
        same_images = json.loads(STATE_FILE.read_text()).get("images_version") == IMAGES_VERSION
    except (OSError, ValueError):
        return False
    return bool(status()["alive_2605"]) and same_images and load() is not None


def down() -> float:
    """Stop everything of the 26.05 cluster: its daemons (and so their namespaces), node namespaces, bridge,
    the accounts in the root, state and scratch. Safe after a crash; touches nothing of the other clusters."""
    t0 = time.monotonic()
    harness._kill({p for p in _ours() if Path(f"/proc/{p}").exists()})
    for n in NODES:
        if Path(f"/run/netns/dssr-{n}").exists():
            sh(["ip", "netns", "del", f"dssr-{n}"], check=False)
        if (
            sh(
                ["ip", "link", "show", f"dssrh-{n}"], check=False, quiet_fail=True
            ).returncode
            == 0
        ):
            sh(["ip", "link", "del", f"dssrh-{n}"], check=False)
    if sh(["ip", "link", "show", BRIDGE], check=False, quiet_fail=True).returncode == 0:
        sh(["ip", "link", "del", BRIDGE], check=False)
    if (ROOT / ".dssr-complete").exists():
        _drop_accounts()
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    dt = time.monotonic() - t0
    log(f"26.05 down in {dt:.1f}s")
    return dt


def save_logs() -> Path | None:
    if not (STATE / "log").exists():
        return None
    keep = Path(f"/tmp/dssr-test-cluster-2605-failed-logs-{int(time.time())}")
    shutil.copytree(STATE / "log", keep, dirs_exist_ok=True)
    return keep


def session_lock(shared: bool = False, timeout: float = 1200) -> harness.SessionLock:
    return harness.SessionLock(timeout=timeout, shared=shared, path=LOCK_FILE)
