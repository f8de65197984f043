#!/usr/bin/env python3
"""A real Slurm test cluster on this one machine, started and stopped by the tests.

    python tests/cluster/harness.py up [--without-2411]   # bring everything up
    python tests/cluster/harness.py status                # what is running
    python tests/cluster/harness.py down                  # stop and clean, also after a crash
    python tests/cluster/harness.py up-2605|status-2605|down-2605   # the third cluster, on its own
    python tests/cluster/harness.py up-ge|status-ge|down-ge         # the Grid Engine 8.1.9 cluster (gridengine.py)
    python tests/cluster/harness.py scale-on|scale-off    # 22.05 nodes with 512 CPUs each, and back

Three clusters (see docs/test-cluster.md):

* ``dssr``: Slurm 22.05 from Debian 12 on the host. slurmctld on the bridge
  ``dssrbr0`` (10.77.0.1), two ``slurmd`` in network + UTS namespaces
  (node1 10.77.0.11, node2 10.77.0.12), slurmdbd on a private MariaDB,
  slurmrestd on 127.0.0.1:6820 (JWT), sshd on 127.0.0.1:22022 (keys only).
* ``dssr2411``: Slurm 24.11 from a cached Debian 13 chroot (debootstrap):
  slurmctld :7817, one slurmd ``tnode1`` (10.77.0.21) :7818, slurmdbd :7819
  on the same MariaDB, slurmrestd 127.0.0.1:7820.

* ``dssr2605``: Slurm 26.05 and the real Apptainer 1.4.5 in a Debian sid root, with
  two nodes and OCI registries on a bridge of its own (tests/cluster/sid.py); its own
  lock, state, ports and users, so it may be up beside the other two.

Needs root. Everything the harness creates outside its own directories is
written to a ledger first, so ``down`` removes exactly that and nothing else.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

# --------------------------------------------------------------------------- layout
REPO = Path(__file__).resolve().parents[2]
STATE = Path("/run/dssr-test-cluster")          # configs, keys, logs, spool, DB (root, 0755)
DATA = Path("/var/tmp/dssr-test-cluster")       # scratch roots + ledger (shared with the chroot)
CACHE = Path("/var/cache/dssr-test-cluster")    # debootstrap'ed Debian 13 root, kept between runs
CHROOT = CACHE / "trixie-root"
LEDGER = DATA / "ledger.json"
STATE_FILE = STATE / "cluster.json"
SCRATCH = DATA / "jxe_scratch"
SCRATCH_ACL = DATA / "jxe_scratch_acl"
STANDIN_DIR = REPO / "tests" / "standin"

BRIDGE, BRIDGE_IP = "dssrbr0", "10.77.0.1"
NODES = {"node1": "10.77.0.11", "node2": "10.77.0.12"}
TNODES = {"tnode1": "10.77.0.21"}
SSH_PORT = 22022
MYSQL_PORT = 7306
PORTS_2205 = {"ctld": 6817, "slurmd": 6818, "dbd": 6819, "restd": 6820}
PORTS_2411 = {"ctld": 7817, "slurmd": 7818, "dbd": 7819, "restd": 7820}
NODE_CPUS, NODE_MEM_MB = 16, 16000
# The scale configuration of the 22.05 cluster (`harness.py scale-on`, used by benchmarks/poll_cycle.py --scale):
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
SERVICE_USER = "jarvice"
USERS = {"kirby": "nintendo", "mario": "nintendo", "dovahkiin": "pc"}
ACCOUNTS = ("nintendo", "pc")
IDP_ISSUER = "https://idp.test/realms/jarvice"
IDP_KID = "dssr-test-idp"
DEBIAN_PACKAGES = [
    "slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server",
    "slurmrestd", "slurm-wlm-jwt-plugin", "openssh-server", "acl", "iproute2",
    "debootstrap", "shellcheck",
]
CHROOT_PACKAGES = "slurmctld,slurmd,slurmrestd,slurm-client,munge,slurm-wlm-jwt-plugin,slurmdbd"
# Debian services some of those packages would start; stopped if an install started them.
DEBIAN_SERVICES = ["mariadb", "munge", "slurmctld", "slurmd", "slurmdbd", "slurmrestd", "ssh"]
SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HarnessError(RuntimeError):
    """The cluster could not be brought up (message says which step, logs say why)."""


def log(msg: str) -> None:
    if os.environ.get("DSSR_CLUSTER_QUIET") != "1":
        print(f"[dssr-cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class ClusterUser:
    name: str
    email: str
    account: str
    key_path: Path
    uid: int


@dataclass(frozen=True)
class TestIdP:
    """A stand-in OpenID provider: an RSA key pair whose public half Slurm trusts (jwks)."""

    __test__ = False  # not a pytest test class

    issuer: str
    kid: str
    private_key_pem: str
    public_key_pem: str
    jwks: dict[str, Any]

    def mint(self, email: str | None = None, user: str | None = None, audience: str = "jarvice",
             lifespan: int = 600, **claims: Any) -> str:
        """RS256 token like a Keycloak access token. ``claims`` override; a None value drops a claim."""
        import jwt

        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer, "azp": audience, "aud": "account", "typ": "Bearer",
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.issuer}/{email or user or 'anonymous'}")),
            "iat": now, "exp": now + int(lifespan),
        }
        if email is not None:
            payload["email"] = email
            payload["preferred_username"] = user or email.split("@")[0]
        elif user is not None:
            payload["preferred_username"] = user
        if user is not None:
            payload["sun"] = user
        for k, v in claims.items():
            if v is None:
                payload.pop(k, None)
            else:
                payload[k] = v
        return jwt.encode(payload, self.private_key_pem, algorithm="RS256", headers={"kid": self.kid})


@dataclass(frozen=True)
class Cluster:
    name: str                      # "slurm-22.05" | "slurm-24.11"
    cluster_name: str              # Slurm ClusterName
    host: str
    ssh_port: int
    ssh_host_fingerprint: str
    known_hosts: Path
    service_user: str
    users: dict[str, ClusterUser]  # name -> ClusterUser (kirby, mario, dovahkiin)
    jarvice_key: Path
    jarvice_rsa_key: Path
    jarvice_ecdsa_key: Path
    nodes: list[str]
    partition: str
    scratch: Path
    scratch_acl: Path | None
    scratch_acl_note: str          # why scratch_acl is None, or "" when it exists
    restd_url: str
    rest_versions: list[str]
    slurm_version: str
    jwt_hs256_key: bytes
    idp: TestIdP
    slurm_conf: Path               # as seen by commands of run()
    chroot: Path | None            # root the commands run in (24.11), None on the host
    state_dir: Path
    log_dir: Path
    min_job_age: int
    ports: dict[str, int]
    gpus_per_node: int = 0         # gres/gpu count of every node (device files stand in for the GPUs)
    # 26.05 (tests/cluster/sid.py) only:
    enter: Path | None = None      # script running argv inside the cluster's root (pivot_root), instead of chroot
    apptainer_version: str = ""    # the real Apptainer on the nodes; "" where the nodes have the stand-in
    registry: str = ""             # host:port of the plain-HTTP OCI registry on the test network (public images)
    private_registry: str = ""     # host:port of the one that wants a login (htpasswd)
    registry_credentials: tuple[str, ...] = ()  # (user, password) for private_registry
    images: dict[str, str] = dataclasses.field(default_factory=dict)  # "public"/"private"/"nae" -> registry/repository (public: tags 1-4, private: 1, nae: 1-2)

    def token(self, user: str, lifespan: int = 600) -> str:
        """HS256 Slurm token for ``user``, the same as ``scontrol token`` makes."""
        import jwt

        now = int(time.time())
        return jwt.encode({"exp": now + int(lifespan), "iat": now, "sun": user},
                          self.jwt_hs256_key, algorithm="HS256")

    def env(self, user: str) -> dict[str, str]:
        home = "/root" if user == "root" else f"/home/{user}"
        return {"PATH": SYS_PATH, "HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash",
                "LANG": "C.UTF-8", "SLURM_CONF": str(self.slurm_conf)}

    def run(self, cmd: list[str] | str, user: str = SERVICE_USER, check: bool = True,
            timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (argv list or bash script) as ``user`` with this cluster's Slurm env."""
        script = cmd if isinstance(cmd, str) else shlex.join(cmd)
        script = 'cd "$HOME" 2>/dev/null || cd /tmp; ' + script
        argv = ["bash", "-lc", script]
        if user != "root":
            argv = ["runuser", "-u", user, "--"] + argv
        if self.enter is not None:
            argv = [str(self.enter)] + argv
        elif self.chroot is not None:
            argv = ["chroot", str(self.chroot)] + argv
        cp = subprocess.run(argv, env=self.env(user), cwd="/", capture_output=True, text=True,
                            timeout=timeout, input=input)
        if check and cp.returncode != 0:
            raise subprocess.CalledProcessError(cp.returncode, script, cp.stdout, cp.stderr)
        return cp

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until no job is left in slurmctld and every node is idle."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            q = self.run(["squeue", "-h", "-o", "%i %T"], user="root", check=False)
            s = self.run(["sinfo", "-h", "-N", "-p", self.partition, "-o", "%N %T"], user="root", check=False)
            states = {ln.split()[1] for ln in s.stdout.splitlines() if ln.strip()}
            if q.returncode == 0 and not q.stdout.strip() and s.returncode == 0 and states == {"idle"}:
                return
            last = f"squeue: {q.stdout.strip()!r} {q.stderr.strip()!r}; sinfo: {s.stdout.strip()!r}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not idle after {timeout}s: {last}")
            time.sleep(0.5)

    def key_for(self, user: str) -> Path:
        return self.jarvice_key if user == self.service_user else self.users[user].key_path

    # -- (de)serialisation for DSSR_CLUSTER_REUSE
    def to_json(self) -> dict[str, Any]:
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, bytes):
                v = base64.b64encode(v).decode()
            elif isinstance(v, TestIdP):
                v = dataclasses.asdict(v)
            elif f.name == "users":
                v = {k: {**dataclasses.asdict(u), "key_path": str(u.key_path)} for k, u in v.items()}
            d[f.name] = v
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Cluster":
        d = dict(d)
        for k in ("known_hosts", "jarvice_key", "jarvice_rsa_key", "jarvice_ecdsa_key", "scratch",
                  "slurm_conf", "state_dir", "log_dir"):
            d[k] = Path(d[k])
        for k in ("scratch_acl", "chroot", "enter"):
            d[k] = Path(d[k]) if d.get(k) else None
        d["registry_credentials"] = tuple(d.get("registry_credentials", ()))
        d["jwt_hs256_key"] = base64.b64decode(d["jwt_hs256_key"])
        d["idp"] = TestIdP(**d["idp"])
        d["users"] = {k: ClusterUser(**{**u, "key_path": Path(u["key_path"])}) for k, u in d["users"].items()}
        return cls(**d)


# --------------------------------------------------------------------------- small helpers
def sh(argv: list[str], check: bool = True, timeout: float = 120, env: dict[str, str] | None = None,
       input: str | None = None, quiet_fail: bool = False) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and cp.returncode != 0:
        raise HarnessError(f"{shlex.join(argv)} -> exit {cp.returncode}: {cp.stderr.strip() or cp.stdout.strip()}")
    if not check and cp.returncode != 0 and not quiet_fail:
        log(f"(ignored) {shlex.join(argv)} -> {cp.returncode}: {cp.stderr.strip()[:200]}")
    return cp


def write(path: Path, text: str | bytes, mode: int = 0o644, owner: str | int | None = None,
          group: str | int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(text, bytes):
        tmp.write_bytes(text)
    else:
        tmp.write_text(text)
    os.chmod(tmp, mode)
    _chown(tmp, owner, group)
    os.replace(tmp, path)
    return path


def mkdir(path: Path, mode: int = 0o755, owner: str | int | None = None, group: str | int | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    _chown(path, owner, group)
    return path


def _chown(path: Path, owner: str | int | None, group: str | int | None) -> None:
    uid = -1 if owner is None else owner if isinstance(owner, int) else pwd.getpwnam(owner).pw_uid
    gid = -1 if group is None else group if isinstance(group, int) else grp.getgrnam(group).gr_gid
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)


def wait_for(what: str, pred: Callable[[], bool], timeout: float, logfile: Path | None = None,
             procs: Iterable[subprocess.Popen[bytes]] = ()) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - a probe may fail in any way until the service is up
            pass
        for p in procs:
            if p.poll() is not None:
                raise HarnessError(f"{what}: process exited with {p.returncode}; see {logfile}{tail(logfile)}")
        if time.monotonic() > deadline:
            raise HarnessError(f"timeout ({timeout}s) waiting for {what}; see {logfile}{tail(logfile)}")
        time.sleep(0.1)


def tail(path: Path | None, n: int = 15) -> str:
    if not path or not Path(path).exists():
        return ""
    lines = Path(path).read_text(errors="replace").splitlines()[-n:]
    return "\n  | " + "\n  | ".join(lines)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None, state: Path = STATE) -> subprocess.Popen[bytes]:
    """Start a foreground daemon in its own session; remember its pid (under ``state``) for ``down``."""
    (state / "log").mkdir(parents=True, exist_ok=True)
    out = open(state / "log" / f"{name}.out", "ab")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env or {"PATH": SYS_PATH, "LANG": "C.UTF-8"}, start_new_session=True, cwd="/")
    out.close()
    write(state / "pids" / f"{name}.pid", json.dumps({"pid": p.pid, "argv": argv}))
    return p


# --------------------------------------------------------------------------- ledger
def ledger() -> dict[str, Any]:
    try:
        led: dict[str, Any] = json.loads(LEDGER.read_text())
        return led
    except (FileNotFoundError, ValueError):
        return {}


def ledger_add(kind: str, item: Any) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    os.chmod(DATA, 0o755)
    d = ledger()
    d.setdefault(kind, [])
    if item not in d[kind]:
        d[kind].append(item)
    write(LEDGER, json.dumps(d, indent=1), 0o600)


# --------------------------------------------------------------------------- preflight & packages
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


def _service_pids() -> set[int]:
    names = {"mariadbd", "mysqld", "munged", "slurmctld", "slurmd", "slurmdbd", "slurmrestd", "sshd"}
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in names:
                    pids.add(int(d.name))
            except OSError:
                pass
    return pids


def ensure_packages(packages: Iterable[str] = DEBIAN_PACKAGES) -> float:
    """apt-get install what is missing, with services kept from starting. Returns seconds spent."""
    missing = missing_packages(packages)
    if not missing:
        return 0.0
    t0 = time.monotonic()
    log(f"installing Debian packages: {' '.join(missing)}")
    before = _service_pids()
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
    for pid in _service_pids() - before:
        _kill([pid])
    dt = time.monotonic() - t0
    log(f"packages installed in {dt:.1f}s")
    return dt


# --------------------------------------------------------------------------- users & keys
def ensure_users() -> dict[str, int]:
    uids = {}
    for name in [SERVICE_USER, *USERS]:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            sh(["useradd", "-m", "-U", "-s", "/bin/bash", "-c", f"dssr test user {name}", name])
            ledger_add("users", name)
            pw = pwd.getpwnam(name)
        # sshd (UsePAM no) refuses key logins for a locked ("!") password field.
        shadow = sh(["getent", "shadow", name]).stdout.split(":")
        if len(shadow) > 1 and (shadow[1].startswith("!") or shadow[1] == ""):
            if name not in ledger().get("users", []):
                ledger_add("passwords", [name, shadow[1]])
            sh(["usermod", "-p", "*", name])
        uids[name] = pw.pw_uid
    members = set(grp.getgrnam(SERVICE_USER).gr_mem)
    for name in USERS:
        g = grp.getgrgid(pwd.getpwnam(name).pw_gid)
        if SERVICE_USER not in g.gr_mem:
            sh(["gpasswd", "-a", SERVICE_USER, g.gr_name])
            ledger_add("group_members", [SERVICE_USER, g.gr_name])
    del members
    return uids


def keygen(path: Path, kind: str, comment: str, bits: str | None = None) -> Path:
    path.unlink(missing_ok=True)
    Path(str(path) + ".pub").unlink(missing_ok=True)
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if bits:
        argv[2:2] = ["-b", bits]
    sh(argv)
    return path


def fingerprint(pubkey_line: str) -> str:
    blob = base64.b64decode(pubkey_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def make_idp(keydir: Path) -> TestIdP:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    nums = key.public_key().public_numbers()

    def b64u(i: int) -> str:
        return base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).decode().rstrip("=")

    jwks = {"keys": [{"kty": "RSA", "kid": IDP_KID, "alg": "RS256", "use": "sig",
                      "n": b64u(nums.n), "e": b64u(nums.e)}]}
    write(keydir / "idp_private.pem", priv, 0o600)
    write(keydir / "idp_public.pem", pub, 0o644)
    return TestIdP(issuer=IDP_ISSUER, kid=IDP_KID, private_key_pem=priv, public_key_pem=pub, jwks=jwks)


# --------------------------------------------------------------------------- network
def netns_setup(nodes: dict[str, str], bridge: str = BRIDGE, bridge_ip: str = BRIDGE_IP) -> None:
    if sh(["ip", "link", "show", bridge], check=False, quiet_fail=True).returncode != 0:
        sh(["ip", "link", "add", bridge, "type", "bridge"])
        sh(["ip", "addr", "add", f"{bridge_ip}/24", "dev", bridge])
        sh(["ip", "link", "set", bridge, "up"])
    for node, addr in nodes.items():
        ns, veth = f"dssr-{node}", f"dssrh-{node}"
        if Path(f"/run/netns/{ns}").exists():
            sh(["ip", "netns", "del", ns], check=False)
        sh(["ip", "link", "del", veth], check=False, quiet_fail=True)
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh(["ip", "link", "set", veth, "master", bridge, "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])


def in_node(node: str, argv: list[str]) -> list[str]:
    """argv run in the node's network namespace (nsenter, not `ip netns exec`: that remounts
    /sys and breaks slurmd's cgroup detection) and in a UTS namespace named after the node."""
    return ["nsenter", f"--net=/run/netns/dssr-{node}", "unshare", "--uts", "--",
            "sh", "-c", f"hostname {node} && exec {shlex.join(argv)}"]


# --------------------------------------------------------------------------- MariaDB
def start_mariadb(state: Path = STATE, port: int = MYSQL_PORT) -> subprocess.Popen[bytes]:
    """The host's MariaDB (Debian 12), a private instance with its data, socket and log under ``state``."""
    datadir = mkdir(state / "mysql", 0o750, "mysql", "mysql")
    sockdir = mkdir(state / "mysqld", 0o755, "mysql", "mysql")
    logf = state / "log" / "mariadb-install.log"
    cp = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=mysql",
                         "--auth-root-authentication-method=socket", "--skip-test-db",
                         "--skip-name-resolve"], capture_output=True, text=True, timeout=120)
    write(logf, cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise HarnessError(f"mariadb-install-db failed; see {logf}{tail(logf)}")
    write(state / "log" / "mariadb.log", "", 0o640, "mysql", "adm" if _group_exists("adm") else "mysql")
    return spawn("mariadb", [
        "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=mysql",
        f"--socket={sockdir}/mysqld.sock", f"--pid-file={sockdir}/mysqld.pid", f"--port={port}",
        "--bind-address=127.0.0.1", "--skip-name-resolve", f"--log-error={state}/log/mariadb.log",
        "--innodb-buffer-pool-size=128M", "--innodb-lock-wait-timeout=900", "--max-connections=200"], state=state)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def mysql(sql: str, state: Path = STATE) -> None:
    sh(["mariadb", "--no-defaults", f"--socket={state}/mysqld/mysqld.sock", "-u", "root", "-e", sql])


# --------------------------------------------------------------------------- Slurm configs
def slurm_conf(*, cluster: str, ports: dict[str, int], paths: dict[str, Any], nodes: dict[str, str], munge_socket: str | None,
               jwt_key: str, jwks: str, gpus: int = 0, extra: str = "", ctld_ip: str = BRIDGE_IP,
               scale: bool = False) -> str:
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    cpus, mem = (SCALE_CPUS, SCALE_MEM_MB) if scale else (NODE_CPUS, NODE_MEM_MB)
    acct_gather = SCALE_ACCT_GATHER if scale else "jobacct_gather/linux"
    node_lines = "\n".join(
        f"NodeName={n} NodeAddr={a} NodeHostname={n} CPUs={cpus} RealMemory={mem}{gres} State=UNKNOWN"
        for n, a in nodes.items())
    if gpus:
        extra = f"GresTypes=gpu\n{extra}"
    # AccountingStoragePass names the munge socket used towards slurmdbd (else the default one)
    auth_info = (f"AuthInfo=socket={munge_socket}\nAccountingStoragePass={munge_socket}\n"
                 if munge_socket else "")
    return f"""# Written by tests/cluster/harness.py for the dssr test tier; removed by `harness.py down`.
ClusterName={cluster}
SlurmctldHost={socket.gethostname().split('.')[0]}({ctld_ip})
SlurmctldPort={ports['ctld']}
SlurmdPort={ports['slurmd']}
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
{auth_info}AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={jwt_key},jwks={jwks}
StateSaveLocation={paths['ctld_state']}
SlurmdSpoolDir={paths['spool']}/slurmd-%n
SlurmctldPidFile={paths['run']}/slurmctld.pid
SlurmdPidFile={paths['run']}/slurmd-%n.pid
SlurmctldLogFile={paths['log']}/slurmctld.log
SlurmdLogFile={paths['log']}/slurmd-%n.log
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
AccountingStoragePort={ports['dbd']}
AccountingStorageEnforce=associations
JobAcctGatherType={acct_gather}
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
{extra}
{node_lines}
PartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP
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
    return ("# Written by tests/cluster/harness.py: stand-in device files, no real GPU (see NODE_GPUS there).\n"
            f"AutoDetect=off\nName=gpu File={files}\n")


def slurmdbd_conf(*, ports: dict[str, int], paths: dict[str, Any], munge_socket: str | None, jwt_key: str, jwks: str,
                  db: str, password: str, dbd_ip: str = BRIDGE_IP, mysql_port: int = MYSQL_PORT) -> str:
    auth_info = f"AuthInfo=socket={munge_socket}\n" if munge_socket else ""
    return f"""# Written by tests/cluster/harness.py
AuthType=auth/munge
{auth_info}AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={jwt_key},jwks={jwks}
DbdHost={socket.gethostname().split('.')[0]}
DbdAddr={dbd_ip}
DbdPort={ports['dbd']}
SlurmUser=slurm
LogFile={paths['log']}/slurmdbd.log
PidFile={paths['run']}/slurmdbd.pid
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
    run(["sacctmgr", "-i", "add", "cluster", cluster])
    run(["sacctmgr", "-i", "add", "account", ",".join(ACCOUNTS), f"cluster={cluster}",
         "Description=dssr test", "Organization=dssr"])
    for account in ACCOUNTS:
        users = [u for u, a in USERS.items() if a == account]
        run(["sacctmgr", "-i", "add", "user", ",".join(users), f"account={account}", f"cluster={cluster}"])
    run(["sacctmgr", "-i", "add", "user", SERVICE_USER, f"account={','.join(ACCOUNTS)}",
         f"DefaultAccount={ACCOUNTS[0]}", f"cluster={cluster}"])
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


# --------------------------------------------------------------------------- host cluster (22.05)
def _user_objects(keys: Path, uids: dict[str, int]) -> dict[str, ClusterUser]:
    return {u: ClusterUser(name=u, email=f"{u}@example.com", account=a, key_path=keys / f"{u}_ed25519",
                           uid=uids[u]) for u, a in USERS.items()}


def _probe_acl() -> tuple[bool, str]:
    probe = DATA / ".acl-probe"
    probe.mkdir(parents=True, exist_ok=True)
    try:
        cp = subprocess.run(["setfacl", "-m", f"u:{SERVICE_USER}:rwx", str(probe)], capture_output=True, text=True)
        if cp.returncode != 0:
            return False, f"setfacl does not work on {DATA}: {cp.stderr.strip()}"
        cp = subprocess.run(["setfacl", "-d", "-m", f"u:{SERVICE_USER}:rwx", str(probe)],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            return False, f"default ACLs do not work on {DATA}: {cp.stderr.strip()}"
        return True, ""
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _scratch_layout(root: Path, user_mode: int) -> list[Path]:
    """The seed's layout under ``root``: images/ and cache/ shared, users/<user> owned by each
    user (group: the user's own group) with ``user_mode``; returns the user folders."""
    mkdir(root, 0o755)
    mkdir(root / "images", 0o1777)
    mkdir(root / "cache", 0o1777)
    mkdir(root / "users", 0o755)
    return [mkdir(root / "users" / u, user_mode, u, grp.getgrgid(pwd.getpwnam(u).pw_gid).gr_name) for u in USERS]


def make_scratch() -> tuple[Path, Path | None, str]:
    mkdir(DATA, 0o755)
    _scratch_layout(SCRATCH, 0o2770)
    ok, why = _probe_acl()
    if not ok:
        return SCRATCH, None, why
    for d in _scratch_layout(SCRATCH_ACL, 0o700):
        sh(["setfacl", "-m", f"u:{SERVICE_USER}:rwx", str(d)])
        sh(["setfacl", "-d", "-m", f"u:{SERVICE_USER}:rwx", str(d)])
    return SCRATCH, SCRATCH_ACL, ""


def install_standin(dest: Path) -> Path | None:
    """A copy of tests/standin/apptainer in ``dest`` (a folder of the cluster's state): jobs run the copy and
    never reach into the checkout, which may sit in a folder other users cannot enter (e.g. /root/x, 0700)."""
    src = STANDIN_DIR / "apptainer"
    if not src.exists():
        log(f"no {src}: apptainer/singularity not installed")
        return None
    mkdir(dest, 0o755, 0, 0)
    return write(dest / "apptainer", src.read_bytes(), 0o755, 0, 0)


def link_standin(root: Path = Path("/"), target: str | None = None) -> None:
    """apptainer/singularity on the PATH of jobs -> the stand-in's copy ``target`` (as seen inside ``root``)."""
    if target is None:
        installed = install_standin(STATE / "standin")
        if installed is None:
            return
        target = str(installed)
    for name in ("apptainer", "singularity"):
        link = root / "usr/local/bin" / name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.exists() or link.is_symlink():
            if [str(link), target] not in ledger().get("symlinks", []) and link.is_symlink() is False:
                log(f"{link} exists and is not ours: left alone")
                continue
            if not link.is_symlink():
                continue
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        ledger_add("symlinks", [str(link), target])
        link.symlink_to(target)


def sshd_config(*, port: int, host_key: Path | str, pid_file: Path | str, authorized_keys: Path | str,
                slurm_conf: Path | str) -> str:
    """The test clusters' sshd: loopback, keys only (``<authorized_keys>/<user>``, root-owned), no PAM."""
    return f"""# dssr test cluster sshd (tests/cluster/harness.py)
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}/%u
StrictModes yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
MaxStartups 100:30:200
MaxSessions 100
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
SetEnv SLURM_CONF={slurm_conf}
Subsystem sftp internal-sftp
"""


def up_2205() -> Cluster:
    t0 = time.monotonic()
    for d, mode in [(STATE, 0o755), (STATE / "etc", 0o755), (STATE / "keys", 0o700), (STATE / "ssh", 0o700),
                    (STATE / "authorized_keys", 0o755), (STATE / "pids", 0o700), (STATE / "run", 0o755)]:
        mkdir(d, mode, 0, 0)
    mkdir(STATE / "log", 0o755, "slurm", "slurm")
    mkdir(STATE / "spool", 0o755, 0, 0)
    for n in NODES:
        mkdir(STATE / "spool" / f"slurmd-{n}", 0o755, 0, 0)
    mkdir(STATE / "slurmctld", 0o700, "slurm", "slurm")
    os.chown(STATE / "run", pwd.getpwnam("slurm").pw_uid, 0)

    maria = start_mariadb()  # boots while the rest is prepared

    uids = ensure_users()
    keys = STATE / "keys"
    for u in [SERVICE_USER, *USERS]:
        keygen(keys / f"{u}_ed25519", "ed25519", f"{u}@dssr-test")
    keygen(keys / f"{SERVICE_USER}_rsa", "rsa", f"{SERVICE_USER}-rsa@dssr-test", "3072")
    keygen(keys / f"{SERVICE_USER}_ecdsa", "ecdsa", f"{SERVICE_USER}-ecdsa@dssr-test", "256")
    for u in [SERVICE_USER, *USERS]:
        kinds = ["ed25519", "rsa", "ecdsa"] if u == SERVICE_USER else ["ed25519"]
        text = "".join((keys / f"{u}_{k}.pub").read_text() for k in kinds)
        write(STATE / "authorized_keys" / u, text, 0o644, 0, 0)

    # sshd on loopback, its own host key
    ssh = STATE / "ssh"
    keygen(ssh / "ssh_host_ed25519_key", "ed25519", "dssr-test-host")
    host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().strip()
    known_hosts = write(ssh / "known_hosts", f"[127.0.0.1]:{SSH_PORT} {' '.join(host_pub.split()[:2])}\n", 0o644)
    os.chmod(ssh, 0o755)
    os.chmod(ssh / "ssh_host_ed25519_key", 0o600)
    if not Path("/run/sshd").exists():
        mkdir(Path("/run/sshd"), 0o755, 0, 0)
        ledger_add("dirs", "/run/sshd")
    slurm_conf_path = STATE / "etc" / "slurm.conf"
    write(ssh / "sshd_config", sshd_config(port=SSH_PORT, host_key=ssh / "ssh_host_ed25519_key",
                                           pid_file=ssh / "sshd.pid", authorized_keys=STATE / "authorized_keys",
                                           slurm_conf=slurm_conf_path), 0o644)
    sshd = spawn("sshd", ["/usr/sbin/sshd", "-D", "-f", str(ssh / "sshd_config"), "-E", str(STATE / "log" / "sshd.log")])

    # munge with a per-run key and its own socket
    m = mkdir(STATE / "munge", 0o755, "munge", "munge")
    write(m / "munge.key", secrets.token_bytes(1024), 0o400, "munge", "munge")
    munge_socket = str(m / "munge.socket.2")
    munged = spawn("munged", ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups",
                              "/usr/sbin/munged", "-F", f"--key-file={m}/munge.key",
                              f"--socket={munge_socket}", f"--pid-file={m}/munged.pid",
                              f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed"])

    # JWT: HS256 key for Slurm tokens + the test IdP's public key
    hs256 = secrets.token_bytes(48)
    jwt_key = write(STATE / "etc" / "jwt_hs256.key", hs256, 0o600, "slurm", "slurm")
    idp = make_idp(keys)
    jwks = write(STATE / "etc" / "jwks.json", json.dumps(idp.jwks, indent=1), 0o644)

    netns_setup(NODES)
    scratch, scratch_acl, acl_note = make_scratch()
    link_standin()

    paths = _paths_2205()
    write(slurm_conf_path, _slurm_conf_2205(scale=False), 0o644)
    write(STATE / "etc" / "gres.conf", fake_gpus(STATE / "dev", NODE_GPUS), 0o644)  # found beside slurm.conf
    conf_link = Path("/etc/slurm/slurm.conf")
    if not conf_link.exists() and not conf_link.is_symlink():
        conf_link.parent.mkdir(parents=True, exist_ok=True)
        ledger_add("symlinks", [str(conf_link), str(slurm_conf_path)])
        conf_link.symlink_to(slurm_conf_path)
    elif not (conf_link.is_symlink() and os.readlink(conf_link) == str(slurm_conf_path)):
        log(f"{conf_link} exists: ssh sessions get SLURM_CONF from sshd instead")
    db_pass = secrets.token_hex(16)
    write(STATE / "etc" / "slurmdbd.conf", slurmdbd_conf(
        ports=PORTS_2205, paths=paths, munge_socket=munge_socket, jwt_key=str(jwt_key), jwks=str(jwks),
        db="slurm_acct_db", password=db_pass), 0o600, "slurm", "slurm")
    write(STATE / "etc" / "db_password", db_pass, 0o600)

    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": str(slurm_conf_path)}
    wait_for("munged", lambda: Path(munge_socket).exists(), 15, m / "munged.log", [munged])
    wait_for("mariadb", lambda: Path(STATE / "mysqld" / "mysqld.sock").exists() and port_open("127.0.0.1", MYSQL_PORT),
             60, STATE / "log" / "mariadb.log", [maria])
    mysql(f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_pass}';"
          f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
          f"GRANT ALL ON slurm_acct_db_2411.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")

    dbd = spawn("slurmdbd", ["/usr/sbin/slurmdbd", "-D"],
                env={**env, "SLURM_CONF": str(slurm_conf_path)})
    wait_for("slurmdbd", lambda: port_open(BRIDGE_IP, PORTS_2205["dbd"]), 60, STATE / "log" / "slurmdbd.log", [dbd])
    sacctmgr_setup(lambda argv: sh(argv, env=env), "dssr")

    ctld = spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", str(slurm_conf_path)], env=env)
    wait_for("slurmctld", lambda: sh(["scontrol", "ping"], env=env, check=False, quiet_fail=True).stdout.count("UP") >= 1,
             30, STATE / "log" / "slurmctld.log", [ctld])
    slurmds = [spawn(f"slurmd-{n}", in_node(n, ["/usr/sbin/slurmd", "-D", "-N", n, "-f", str(slurm_conf_path)]), env=env)
               for n in NODES]

    restd_env = {**env, "SLURM_JWT": "daemon"}
    restd = spawn("slurmrestd", ["/usr/sbin/slurmrestd", "-f", str(slurm_conf_path), "-a", "rest_auth/jwt",
                                 "-u", "nobody", f"127.0.0.1:{PORTS_2205['restd']}"], env=restd_env)

    def nodes_idle() -> bool:
        cp = sh(["sinfo", "-h", "-N", "-o", "%N %T"], env=env, check=False, quiet_fail=True)
        st = dict(ln.split() for ln in cp.stdout.splitlines() if ln.strip())
        return all(st.get(n) == "idle" for n in NODES)

    wait_for("nodes idle", nodes_idle, 45, STATE / "log" / "slurmctld.log", [ctld, *slurmds])
    wait_for("slurmrestd", lambda: port_open("127.0.0.1", PORTS_2205["restd"]), 20,
             STATE / "log" / "slurmrestd.out", [restd])
    wait_for("sshd", lambda: port_open("127.0.0.1", SSH_PORT), 20, STATE / "log" / "sshd.log", [sshd])
    version = sh(["sinfo", "-V"], env=env).stdout.split()[-1]
    cluster = Cluster(
        name="slurm-22.05", cluster_name="dssr", host="127.0.0.1", ssh_port=SSH_PORT,
        ssh_host_fingerprint=fingerprint(host_pub), known_hosts=known_hosts, service_user=SERVICE_USER,
        users=_user_objects(keys, uids), jarvice_key=keys / f"{SERVICE_USER}_ed25519",
        jarvice_rsa_key=keys / f"{SERVICE_USER}_rsa", jarvice_ecdsa_key=keys / f"{SERVICE_USER}_ecdsa",
        nodes=list(NODES), partition="debug", scratch=scratch, scratch_acl=scratch_acl,
        scratch_acl_note=acl_note, restd_url=f"http://127.0.0.1:{PORTS_2205['restd']}",
        rest_versions=["v0.0.36", "v0.0.37", "v0.0.38"], slurm_version=version, jwt_hs256_key=hs256,
        idp=idp, slurm_conf=slurm_conf_path, chroot=None, state_dir=STATE, log_dir=STATE / "log",
        min_job_age=MIN_JOB_AGE, ports={**PORTS_2205, "ssh": SSH_PORT, "mysql": MYSQL_PORT},
        gpus_per_node=NODE_GPUS)
    _save_state("slurm-22.05", cluster)
    log(f"Slurm {version} cluster up in {time.monotonic() - t0:.1f}s")
    return cluster


def _paths_2205() -> dict[str, Any]:
    return {"ctld_state": STATE / "slurmctld", "spool": STATE / "spool", "run": STATE / "run", "log": STATE / "log"}


def _slurm_conf_2205(scale: bool) -> str:
    return slurm_conf(cluster="dssr", ports=PORTS_2205, paths=_paths_2205(), nodes=NODES,
                      munge_socket=str(STATE / "munge" / "munge.socket.2"), jwt_key=str(STATE / "etc" / "jwt_hs256.key"),
                      jwks=str(STATE / "etc" / "jwks.json"), gpus=NODE_GPUS, scale=scale)


def scaled_2205() -> bool:
    """Whether the 22.05 cluster runs in the scale configuration (see SCALE_CPUS)."""
    try:
        return f"CPUs={SCALE_CPUS} " in (STATE / "etc" / "slurm.conf").read_text()
    except OSError:
        return False


def set_scale_2205(scale: bool, timeout: float = 60) -> bool:
    """Put the live 22.05 cluster in the scale configuration (or back in the normal one): rewrite slurm.conf,
    restart slurmctld and both slurmd (jobs in the queue would be lost: the caller holds the exclusive session
    lock on an idle cluster).  Returns whether anything changed; raises HarnessError if the daemons do not
    come back with the nodes idle and the CPUs of the configuration."""
    if scaled_2205() == scale:
        return False
    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": str(STATE / "etc" / "slurm.conf")}
    queue = sh(["squeue", "-h", "-o", "%i"], env=env).stdout.split()
    if queue:
        raise HarnessError(f"cannot change the 22.05 configuration with jobs in the queue: {' '.join(queue[:10])}")
    daemons = [*(f"slurmd-{n}" for n in NODES), "slurmctld"]
    argvs = {}
    for name in daemons:
        argvs[name] = json.loads((STATE / "pids" / f"{name}.pid").read_text())["argv"]
    _stop([json.loads((STATE / "pids" / f"{name}.pid").read_text())["pid"] for name in daemons], timeout)
    write(STATE / "etc" / "slurm.conf", _slurm_conf_2205(scale=scale), 0o644)
    ctld = spawn("slurmctld", argvs["slurmctld"], env=env)
    wait_for("slurmctld", lambda: "UP" in sh(["scontrol", "ping"], env=env, check=False, quiet_fail=True).stdout,
             timeout, STATE / "log" / "slurmctld.log", [ctld])
    slurmds = [spawn(f"slurmd-{n}", argvs[f"slurmd-{n}"], env=env) for n in NODES]
    cpus = str(SCALE_CPUS if scale else NODE_CPUS)

    def nodes_ready() -> bool:
        cp = sh(["sinfo", "-h", "-N", "-o", "%N %T %c"], env=env, check=False, quiet_fail=True)
        st = {ln.split()[0]: ln.split()[1:] for ln in cp.stdout.splitlines() if ln.strip()}
        return all(st.get(n) == ["idle", cpus] for n in NODES)

    wait_for(f"nodes idle with {cpus} CPUs", nodes_ready, timeout, STATE / "log" / "slurmctld.log", [ctld, *slurmds])
    log(f"22.05 cluster in the {'scale' if scale else 'normal'} configuration ({cpus} CPUs per node)")
    return True


def _stop(pids: list[int], timeout: float) -> None:
    """SIGTERM ``pids`` and wait until they are gone (reaped when they are our children)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{p}").exists() and "zombie" not in _proc_state(p) for p in pids):
        if time.monotonic() > deadline:
            raise HarnessError(f"daemons {pids} still running {timeout:.0f}s after SIGTERM")
        time.sleep(0.1)
    _reap(pids)


def _save_state(key: str, cluster: Cluster) -> None:
    try:
        d = json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, ValueError):
        d = {}
    d[key] = cluster.to_json()
    write(STATE_FILE, json.dumps(d, indent=1), 0o600)


# --------------------------------------------------------------------------- 24.11 chroot
def debian_mirror() -> str:
    """The Debian archive URL this machine's apt uses (never another host)."""
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") or p.name == "sources.list":
            try:
                texts.append((p.suffix, p.read_text()))
            except OSError:
                pass
    for suffix, text in texts:
        if suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                f = {}
                for ln in stanza.splitlines():
                    if ":" in ln and not ln.lstrip().startswith("#"):
                        k, v = ln.split(":", 1)
                        f[k.strip().lower()] = v.strip()
                suites = f.get("suites", "").split()
                if "deb" in f.get("types", "").split() and any(
                        s and "security" not in s and "-" not in s for s in suites):
                    for uri in f.get("uris", "").split():
                        if "security" not in uri:
                            return uri.rstrip("/")
        else:
            for ln in text.splitlines():
                parts = ln.split()
                if len(parts) >= 3 and parts[0] == "deb":
                    rest = [x for x in parts[1:] if not x.startswith("[")]
                    if rest and "security" not in rest[0] and "-" not in rest[1]:
                        return rest[0].rstrip("/")
    raise HarnessError("no Debian mirror found in /etc/apt/sources.list(.d)")


def ensure_chroot() -> float:
    return debootstrap_root(CHROOT, "trixie", CHROOT_PACKAGES)


def debootstrap_root(root: Path, suite: str, packages: str) -> float:
    """A minbase Debian ``suite`` with ``packages`` at ``root``, built once and kept (seconds spent building).

    The completion marker holds the debootstrap command: a changed package list rebuilds the root.
    A package the suite no longer has fails with one line naming it."""
    marker = root / ".dssr-complete"
    mirror = debian_mirror()
    what = f"debootstrap --variant=minbase --include={packages} {suite} {mirror}\n"
    if marker.exists() and marker.read_text() == what:
        return 0.0
    t0 = time.monotonic()
    partial = root.with_name(root.name + ".partial")
    _umount_under(partial)
    _umount_under(root)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {suite} from {mirror} (cached in {root} afterwards)")
    logf = root.with_name(f"debootstrap-{root.name}.log")
    with open(logf, "w") as out:
        rc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={packages}", suite,
                             str(partial), mirror], stdout=out, stderr=subprocess.STDOUT, timeout=1500).returncode
    _umount_under(partial)
    if rc != 0:
        text = logf.read_text(errors="replace")
        gone = re.search(r"Couldn't find these debs: (.*)", text)
        if gone:
            raise HarnessError(f"Debian {suite} no longer has the package(s) {gone.group(1).strip()} "
                               f"(debootstrap: see {logf})")
        raise HarnessError(f"debootstrap {suite} failed ({rc}); see {logf}{tail(logf)}")
    os.replace(partial, root)
    write(marker, what)
    dt = time.monotonic() - t0
    log(f"{suite} root built in {dt:.1f}s")
    return dt


def _mounts_under(root: Path) -> list[str]:
    out = []
    prefix = str(root).rstrip("/") + "/"
    for ln in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = ln.split()[4].replace("\\040", " ")
        if mp.startswith(prefix) or mp == str(root):
            out.append(mp)
    return out


def _umount_under(root: Path) -> None:
    for _ in range(3):
        mps = sorted(set(_mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not mps:
            return
        for mp in mps:
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)


def _bind(src: str, rel: str, ro: bool = False, recursive: bool = False) -> None:
    dst = CHROOT / rel.lstrip("/")
    dst.mkdir(parents=True, exist_ok=True)
    if str(dst) in _mounts_under(CHROOT):
        return
    sh(["mount", "--rbind" if recursive else "--bind", src, str(dst)])
    sh(["mount", "--make-rslave" if recursive else "--make-private", str(dst)], check=False)
    if ro:
        sh(["mount", "-o", "remount,bind,ro", str(dst)], check=False)


def _chroot_accounts() -> None:
    names = [SERVICE_USER, *USERS]
    groups = set(names)
    for fname, keyset, getent in [("passwd", names, "passwd"), ("shadow", names, "shadow"),
                                  ("group", groups, "group"), ("gshadow", groups, "gshadow")]:
        p = CHROOT / "etc" / fname
        lines = [ln for ln in p.read_text().splitlines() if ln.split(":")[0] not in keyset]
        for n in sorted(keyset):
            cp = sh(["getent", getent, n], check=False, quiet_fail=True)
            if cp.returncode == 0:
                lines.append(cp.stdout.strip())
        st = p.stat()
        write(p, "\n".join(lines) + "\n", st.st_mode & 0o7777, st.st_uid, st.st_gid)


def _chroot_id(name: str, file: str = "passwd", root: Path = CHROOT) -> int:
    for ln in (root / "etc" / file).read_text().splitlines():
        f = ln.split(":")
        if f[0] == name:
            return int(f[2])
    raise HarnessError(f"no {name} in {root}/etc/{file}")


def up_2411(host: Cluster) -> Cluster:
    t0 = time.monotonic()
    built = ensure_chroot()
    ledger_add("chroots", str(CHROOT))
    _umount_under(CHROOT)
    # per-run state of the 24.11 daemons lives in the host state dir, bind-mounted at /var/lib/dssr
    st = mkdir(STATE / "c2411", 0o755, 0, 0)
    slurm_uid, slurm_gid = _chroot_id("slurm"), _chroot_id("slurm", "group")
    munge_uid, munge_gid = _chroot_id("munge"), _chroot_id("munge", "group")
    for d, mode, o in [("log", 0o755, (slurm_uid, slurm_gid)), ("run", 0o755, (slurm_uid, 0)),
                       ("spool", 0o755, (0, 0)), ("slurmctld", 0o700, (slurm_uid, slurm_gid)),
                       *[(f"spool/slurmd-{n}", 0o755, (0, 0)) for n in TNODES]]:
        mkdir(st / d, mode, *o)
    sh(["mount", "-t", "proc", "proc", str(CHROOT / "proc")])
    _bind("/sys", "/sys", recursive=True)
    _bind("/dev", "/dev", recursive=True)
    _bind(str(DATA), str(DATA))
    _bind("/home", "/home")
    _bind(str(st), "/var/lib/dssr")
    if install_standin(st / "standin") is not None:  # st is /var/lib/dssr in the chroot
        link_standin(CHROOT, "/var/lib/dssr/standin/apptainer")
    _chroot_accounts()
    write(CHROOT / "etc/hosts", f"127.0.0.1 localhost\n{BRIDGE_IP} {socket.gethostname().split('.')[0]}\n"
          + "".join(f"{a} {n}\n" for n, a in {**NODES, **TNODES}.items()))

    # munge: own key, own daemon, default socket inside the chroot
    for d in ("run/munge", "var/lib/munge", "var/log/munge", "etc/munge"):
        mkdir(CHROOT / d, 0o755 if d == "run/munge" else 0o700, munge_uid, munge_gid)
    write(CHROOT / "etc/munge/munge.key", secrets.token_bytes(1024), 0o400, munge_uid, munge_gid)
    (CHROOT / "run/munge/munge.socket.2").unlink(missing_ok=True)
    munged = spawn("c2411-munged", ["chroot", f"--userspec={munge_uid}:{munge_gid}", str(CHROOT),
                                    "/usr/sbin/munged", "-F"])

    etc = CHROOT / "etc/slurm"
    write(etc / "jwt_hs256.key", host.jwt_hs256_key, 0o600, slurm_uid, slurm_gid)
    write(etc / "jwks.json", json.dumps(host.idp.jwks, indent=1), 0o644)
    paths = {"ctld_state": "/var/lib/dssr/slurmctld", "spool": "/var/lib/dssr/spool", "run": "/var/lib/dssr/run",
             "log": "/var/lib/dssr/log"}
    write(etc / "slurm.conf", slurm_conf(cluster="dssr2411", ports=PORTS_2411, paths=paths, nodes=TNODES,
                                         munge_socket=None, jwt_key="/etc/slurm/jwt_hs256.key",
                                         jwks="/etc/slurm/jwks.json", gpus=NODE_GPUS), 0o644)
    write(etc / "gres.conf", fake_gpus(st / "dev", NODE_GPUS, seen_as="/var/lib/dssr/dev"), 0o644)
    write(etc / "cgroup.conf", "CgroupPlugin=disabled\n", 0o644)
    db_pass = (STATE / "etc" / "db_password").read_text().strip()
    write(etc / "slurmdbd.conf", slurmdbd_conf(
        ports=PORTS_2411, paths=paths, munge_socket=None, jwt_key="/etc/slurm/jwt_hs256.key",
        jwks="/etc/slurm/jwks.json", db="slurm_acct_db_2411", password=db_pass), 0o600, slurm_uid, slurm_gid)

    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": "/etc/slurm/slurm.conf"}
    croot = ["chroot", str(CHROOT)]
    logdir = st / "log"
    wait_for("24.11 munged", lambda: (CHROOT / "run/munge/munge.socket.2").exists(), 15,
             CHROOT / "var/log/munge/munged.log", [munged])
    dbd = spawn("c2411-slurmdbd", croot + ["/usr/sbin/slurmdbd", "-D"], env=env)
    wait_for("24.11 slurmdbd", lambda: port_open(BRIDGE_IP, PORTS_2411["dbd"]), 90, logdir / "slurmdbd.log", [dbd])
    sacctmgr_setup(lambda argv: sh(croot + argv, env=env), "dssr2411")
    ctld = spawn("c2411-slurmctld", croot + ["/usr/sbin/slurmctld", "-D"], env=env)
    wait_for("24.11 slurmctld", lambda: "UP" in sh(croot + ["scontrol", "ping"], env=env, check=False,
                                                   quiet_fail=True).stdout, 30, logdir / "slurmctld.log", [ctld])
    netns_setup(TNODES)
    slurmds = [spawn(f"c2411-slurmd-{n}", in_node(n, ["chroot", str(CHROOT), "/usr/sbin/slurmd", "-D", "-N", n]),
                     env=env) for n in TNODES]
    restd = spawn("c2411-slurmrestd", croot + ["/usr/sbin/slurmrestd", "-a", "rest_auth/jwt", "-s",
                                               "slurmctld,slurmdbd", "-u", "nobody", "-g", "nogroup",
                                               f"127.0.0.1:{PORTS_2411['restd']}"],
                  env={**env, "SLURM_JWT": "daemon"})

    def nodes_idle() -> bool:
        cp = sh(croot + ["sinfo", "-h", "-N", "-o", "%N %T"], env=env, check=False, quiet_fail=True)
        stt = dict(ln.split() for ln in cp.stdout.splitlines() if ln.strip())
        return all(stt.get(n) == "idle" for n in TNODES)

    wait_for("24.11 node idle", nodes_idle, 45, logdir / "slurmctld.log", [ctld, *slurmds])
    wait_for("24.11 slurmrestd", lambda: port_open("127.0.0.1", PORTS_2411["restd"]), 20,
             STATE / "log" / "c2411-slurmrestd.out", [restd])
    version = sh(croot + ["sinfo", "-V"], env=env).stdout.split()[-1]
    cluster = dataclasses.replace(
        host, name="slurm-24.11", cluster_name="dssr2411", nodes=list(TNODES),
        restd_url=f"http://127.0.0.1:{PORTS_2411['restd']}", rest_versions=["v0.0.40", "v0.0.41", "v0.0.42"],
        slurm_version=version, slurm_conf=Path("/etc/slurm/slurm.conf"), chroot=CHROOT, state_dir=st,
        log_dir=logdir, ports={**PORTS_2411, "ssh": SSH_PORT, "mysql": MYSQL_PORT})
    _save_state("slurm-24.11", cluster)
    log(f"Slurm {version} cluster up in {time.monotonic() - t0:.1f}s (chroot build {built:.1f}s)")
    return cluster


# --------------------------------------------------------------------------- liveness / load
def _pidfile_alive(name: str, state: Path = STATE) -> bool:
    try:
        d = json.loads((state / "pids" / f"{name}.pid").read_text())
        os.kill(d["pid"], 0)
        return Path(f"/proc/{d['pid']}").exists() and "zombie" not in _proc_state(d["pid"])
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError, KeyError):
        return False


def _proc_state(pid: int) -> str:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("State:"):
                return ln.lower()
    except OSError:
        pass
    return "gone zombie"


CORE_2205 = ["mariadb", "sshd", "munged", "slurmdbd", "slurmctld", "slurmrestd", *[f"slurmd-{n}" for n in NODES]]
CORE_2411 = ["c2411-munged", "c2411-slurmdbd", "c2411-slurmctld", "c2411-slurmrestd",
             *[f"c2411-slurmd-{n}" for n in TNODES]]


def status() -> dict[str, Any]:
    d: dict[str, Any] = {"state_file": STATE_FILE.exists()}
    d["daemons"] = {n: _pidfile_alive(n) for n in CORE_2205 + CORE_2411}
    d["alive_2205"] = STATE_FILE.exists() and all(d["daemons"][n] for n in CORE_2205)
    d["alive_2411"] = d["alive_2205"] and all(d["daemons"][n] for n in CORE_2411)
    d["scale_2205"] = scaled_2205()
    return d


def load(key: str = "slurm-22.05") -> Cluster | None:
    try:
        return Cluster.from_json(json.loads(STATE_FILE.read_text())[key])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def alive(key: str = "slurm-22.05") -> bool:
    s = status()
    return bool(s["alive_2205"] if key == "slurm-22.05" else s["alive_2411"]) and load(key) is not None


# --------------------------------------------------------------------------- teardown
def _all_pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _ours(created_uids: set[int]) -> set[int]:
    """pids of everything the harness started: pidfiles, processes in our namespaces or chroot,
    processes naming our state dirs, processes of users we created, and their descendants."""
    me = os.getpid()
    pids: set[int] = set()
    for f in (STATE / "pids").glob("*.pid") if (STATE / "pids").exists() else []:
        try:
            d = json.loads(f.read_text())
            if Path(f"/proc/{d['pid']}").exists():
                pids.add(int(d["pid"]))
        except (ValueError, KeyError, OSError):
            pass
    ns_inodes = set()
    for n in [*NODES, *TNODES]:
        try:
            ns_inodes.add(os.stat(f"/run/netns/dssr-{n}").st_ino)
        except OSError:
            pass
    chroot_real = os.path.realpath(CHROOT)
    markers = [str(STATE), str(CHROOT)]
    for pid in _all_pids():
        if pid == me:
            continue
        try:
            if ns_inodes and os.stat(f"/proc/{pid}/ns/net").st_ino in ns_inodes:
                pids.add(pid)
                continue
            if os.readlink(f"/proc/{pid}/root").startswith(chroot_real):
                pids.add(pid)
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(m in cmd for m in markers) and "harness.py" not in cmd and "pytest" not in cmd:
                pids.add(pid)
                continue
            if created_uids and os.stat(f"/proc/{pid}").st_uid in created_uids:
                pids.add(pid)
        except OSError:
            pass
    return with_descendants(pids)  # sshd sessions, slurmstepd, job steps


def with_descendants(pids: set[int]) -> set[int]:
    """``pids`` and every process below them (never this process)."""
    me = os.getpid()
    pids = set(pids)
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        children.setdefault(_ppid(pid), []).append(pid)
    todo = list(pids)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in pids and c != me:
                pids.add(c)
                todo.append(c)
    pids.discard(me)
    return pids


def _kill(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGKILL job processes (slurmstepd and below, user processes) at once, SIGTERM the daemons,
    SIGKILL what is left after ``grace``; then wait for the exits to be collected."""
    pids = set(pids)
    jobs = set()
    children: dict[int, list[int]] = {}
    for p in _all_pids():
        children.setdefault(_ppid(p), []).append(p)
    todo = [p for p in pids if _comm(p) == "slurmstepd" or _uid_of(p) >= 1000 and _uid_of(p) != 65534]
    while todo:
        p = todo.pop()
        if p in jobs:
            continue
        jobs.add(p)
        todo.extend(children.get(p, []))
    for p in jobs & pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in pids - jobs:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    all_pids = set(pids)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(all_pids)
        pids = {p for p in pids if Path(f"/proc/{p}").exists() and "zombie" not in _proc_state(p)}
        if not pids:
            break
        time.sleep(0.1)
    if pids:
        log("SIGKILL after {:.0f}s: {}".format(grace, ", ".join(f"{p} {_comm(p)}" for p in sorted(pids))))
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # wait until the kernel has let go of them (our children: reaped here; orphans: by init)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _reap(all_pids)
        if not any(Path(f"/proc/{p}").exists() for p in all_pids):
            break
        time.sleep(0.05)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _reap(pids: Iterable[int]) -> None:
    """Collect the exit status of our own children (daemons started by this process)."""
    for p in pids:
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass


def down_2411() -> None:
    """Stop only the 24.11 cluster (its daemons, node namespace, chroot mounts)."""
    pids = set()
    for n in CORE_2411:
        try:
            pids.add(json.loads((STATE / "pids" / f"{n}.pid").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass
    chroot_real = os.path.realpath(CHROOT)
    ns = {os.stat(f"/run/netns/dssr-{n}").st_ino for n in TNODES if Path(f"/run/netns/dssr-{n}").exists()}
    for pid in _all_pids():
        try:
            if os.readlink(f"/proc/{pid}/root").startswith(chroot_real) or os.stat(f"/proc/{pid}/ns/net").st_ino in ns:
                pids.add(pid)
        except OSError:
            pass
    _kill({p for p in pids if Path(f"/proc/{p}").exists()})
    for n in TNODES:
        sh(["ip", "netns", "del", f"dssr-{n}"], check=False, quiet_fail=True)
    _umount_under(CHROOT)
    _unlink_symlinks(under=CHROOT)
    try:
        d = json.loads(STATE_FILE.read_text())
        d.pop("slurm-24.11", None)
        write(STATE_FILE, json.dumps(d, indent=1), 0o600)
    except (FileNotFoundError, ValueError):
        pass


def _unlink_symlinks(under: Path | None = None) -> None:
    led = ledger()
    keep = []
    for link, target in led.get("symlinks", []):
        if under is not None and not link.startswith(str(under) + "/"):
            keep.append([link, target])
            continue
        p = Path(link)
        if p.is_symlink() and os.readlink(p) == target:
            p.unlink()
    if led:
        led["symlinks"] = keep
        write(LEDGER, json.dumps(led, indent=1), 0o600)


def down() -> float:
    """Stop and remove everything `up` made. Safe to run any time, also after a crash."""
    t0 = time.monotonic()
    led = ledger()
    if _ge_alive():
        led = hand_over_users(led)
    created_uids = set()
    for u in led.get("users", []):
        try:
            created_uids.add(pwd.getpwnam(u).pw_uid)
        except KeyError:
            pass
    _kill(_ours(created_uids))
    for n in [*NODES, *TNODES]:
        if Path(f"/run/netns/dssr-{n}").exists():
            sh(["ip", "netns", "del", f"dssr-{n}"], check=False)
        if sh(["ip", "link", "show", f"dssrh-{n}"], check=False, quiet_fail=True).returncode == 0:
            sh(["ip", "link", "del", f"dssrh-{n}"], check=False)
    if sh(["ip", "link", "show", BRIDGE], check=False, quiet_fail=True).returncode == 0:
        sh(["ip", "link", "del", BRIDGE], check=False)
    _umount_under(CHROOT)
    _umount_under(CACHE / "trixie-root.partial")
    _unlink_symlinks()
    if CHROOT.exists() and (CHROOT / "etc/passwd").exists():
        try:
            names = {SERVICE_USER, *USERS}
            for fname in ("passwd", "shadow", "group", "gshadow"):
                p = CHROOT / "etc" / fname
                lines = [ln for ln in p.read_text().splitlines() if ln.split(":")[0] not in names]
                st = p.stat()
                write(p, "\n".join(lines) + "\n", st.st_mode & 0o7777, st.st_uid, st.st_gid)
        except OSError:
            pass
    for user, group in led.get("group_members", []):
        if user not in led.get("users", []) and _group_exists(group) and group not in led.get("users", []):
            sh(["gpasswd", "-d", user, group], check=False)
    for user, field_ in led.get("passwords", []):
        sh(["usermod", "-p", field_, user], check=False)
    for u in led.get("users", []):
        try:
            pwd.getpwnam(u)
        except KeyError:
            continue
        _kill([p for p in _all_pids() if _uid_of(p) == pwd.getpwnam(u).pw_uid])
        sh(["userdel", "-r", "-f", u], check=False)
        if _group_exists(u):
            sh(["groupdel", u], check=False, quiet_fail=True)
    for d in led.get("dirs", []):
        try:
            os.rmdir(d)
        except OSError:
            pass
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    dt = time.monotonic() - t0
    log(f"down in {dt:.1f}s")
    return dt


def hand_over_users(led: dict[str, Any]) -> dict[str, Any]:
    """The Grid Engine cluster (tests/cluster/gridengine.py) runs jobs as the same users: its ledger
    takes over the users, groups, passwords and dirs this one created (its `down` removes them);
    returns what is left for this `down` to undo."""
    from tests.cluster import gridengine

    gridengine.adopt_users(led.get("users", []), led.get("group_members", []), led.get("passwords", []))
    for d in led.get("dirs", []):
        gridengine.ledger_add("dirs", d)
    return {k: v for k, v in led.items() if k not in ("users", "group_members", "passwords", "dirs")}


def _ge_alive() -> bool:
    """Whether the Grid Engine test cluster has state on this machine (it shares the users)."""
    return Path("/run/dssr-ge-cluster").exists()


def _uid_of(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


# --------------------------------------------------------------------------- entry points
LOCK_FILE = CACHE / "session.lock"


class SessionLock:
    """One test session (or CLI up/down) drives the cluster at a time on this machine."""

    def __init__(self, timeout: float = 1200, shared: bool = False, path: Path = LOCK_FILE):
        self.timeout = timeout
        self.shared = shared  # sessions reusing a running cluster share; up/down is exclusive
        self.path = path      # one lock per cluster that can be up on its own (22.05+24.11, 26.05)
        self.fd: int | None = None

    def __enter__(self) -> "SessionLock":
        import fcntl

        CACHE.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        said = False
        while True:
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if not said:
                    log(f"another session holds {self.path}: waiting up to {self.timeout:.0f}s")
                    said = True
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise HarnessError(f"another session still holds {self.path} after {self.timeout:.0f}s") from None
                time.sleep(1)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def save_logs() -> Path | None:
    """Copy the daemons' logs out of the state dir (which `down` removes)."""
    logs = STATE / "log"
    if not logs.exists():
        return None
    keep = Path(f"/tmp/dssr-test-cluster-failed-logs-{int(time.time())}")
    shutil.copytree(logs, keep, dirs_exist_ok=True)
    if (STATE / "c2411" / "log").exists():
        shutil.copytree(STATE / "c2411" / "log", keep / "c2411", dirs_exist_ok=True)
    return keep

def up(with_2411: bool = False) -> Cluster:
    why = preflight()
    if why:
        raise HarnessError(f"cluster tier: {why}")
    ensure_packages()
    if STATE.exists() or LEDGER.exists():
        log("leftovers of an earlier run: cleaning first")
        down()
    host = up_2205()
    if with_2411:
        up_2411(host)
    return host


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["up", "down", "status", "up-2411", "down-2411", "up-2605", "down-2605",
                                       "status-2605", "scale-on", "scale-off", "up-ge", "down-ge", "status-ge"])
    ap.add_argument("--without-2411", action="store_true", help="up: only the Slurm 22.05 cluster")
    a = ap.parse_args(argv)
    if a.action.endswith("-2605"):
        return _main_2605(a.action)
    if a.action.endswith("-ge"):
        return _main_ge(a.action)
    with SessionLock(timeout=60 if a.action != "status" else 0.1) if a.action != "status" else _NoLock():
        if a.action == "up":
            try:
                up(with_2411=not a.without_2411)
            except Exception as e:  # noqa: BLE001 - whatever failed, the logs are kept
                log(f"up failed: {e}")
                keep = save_logs()
                log(f"logs kept in {keep}")
                if os.environ.get("DSSR_CLUSTER_KEEP_FAILED") == "1":
                    log("DSSR_CLUSTER_KEEP_FAILED=1: left as is for inspection; `down` cleans")
                    return 1
                down()
                return 1
            print(json.dumps(status(), indent=1))
        elif a.action == "up-2411":
            host = load()
            if host is None:
                log("no 22.05 cluster: run `up` first")
                return 1
            up_2411(host)
        elif a.action == "down-2411":
            down_2411()
        elif a.action in ("scale-on", "scale-off"):
            if not alive("slurm-22.05"):
                log("no 22.05 cluster: run `up` first")
                return 1
            set_scale_2205(a.action == "scale-on")
        elif a.action == "down":
            down()
        else:
            print(json.dumps(status(), indent=1))
            return 0 if status()["alive_2205"] else 3
    return 0


def _main_2605(action: str) -> int:
    """up/down/status of the Slurm 26.05 cluster (tests/cluster/sid.py): its own lock, state and network."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.cluster import sid

    if action == "status-2605":
        print(json.dumps(sid.status(), indent=1))
        return 0 if sid.status()["alive_2605"] else 3
    with sid.session_lock(timeout=60):
        if action == "down-2605":
            sid.down()
            return 0
        try:
            sid.up()
        except Exception as e:  # noqa: BLE001 - whatever failed, the logs are kept
            log(f"up-2605 failed: {e}")
            log(f"logs kept in {sid.save_logs()}")
            if os.environ.get("DSSR_CLUSTER_KEEP_FAILED") == "1":
                log("DSSR_CLUSTER_KEEP_FAILED=1: left as is for inspection; `down-2605` cleans")
                return 1
            sid.down()
            return 1
        print(json.dumps(sid.status(), indent=1))
    return 0


def _main_ge(action: str) -> int:
    """up/down/status of the Grid Engine cluster (tests/cluster/gridengine.py): its own lock, state and network."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.cluster import gridengine

    if action == "status-ge":
        print(json.dumps(gridengine.status(), indent=1))
        return 0 if gridengine.status()["alive_ge"] else 3
    with gridengine.session_lock(timeout=60):
        if action == "down-ge":
            gridengine.down()
            return 0
        try:
            gridengine.up()
        except Exception as e:  # noqa: BLE001 - whatever failed, the logs are kept
            log(f"up-ge failed: {e}")
            log(f"logs kept in {gridengine.save_logs()}")
            if os.environ.get("DSSR_CLUSTER_KEEP_FAILED") == "1":
                log("DSSR_CLUSTER_KEEP_FAILED=1: left as is for inspection; `down-ge` cleans")
                return 1
            gridengine.down()
            return 1
        print(json.dumps(gridengine.status(), indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        log(str(e))
        sys.exit(2)
