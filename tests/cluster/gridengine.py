"""The Grid Engine test cluster: Debian 12's Grid Engine 8.1.9, started by the test suite.

    python -m tests.cluster up --kind ge       # bring it up (beside the Slurm clusters); or: up-ge
    python -m tests.cluster down --kind ge     # stop it and clean, also after a crash; or: down-ge
    python -m tests.cluster status --kind ge   # or: status-ge

Layout (docs/test-cluster.md; the cell and its commands: gecell.py):

* a cell ``dssrge`` of the packages' ``SGE_ROOT`` (``/var/lib/gridengine/dssrge``), spool and
  Berkeley DB under ``/run/dssr-ge-cluster``, accounting on (``common/accounting``, flushed at once);
* ``sge_qmaster`` (port 16444) on the host network in a UTS namespace named ``gemaster``; the login
  node's sshd (127.0.0.1:22444, keys only) in the same UTS namespace, so every client command has
  the host name the qmaster knows (Grid Engine refuses a client whose name and address disagree);
* two ``sge_execd`` (port 16445), ``genode1`` 10.79.0.11 and ``genode2`` 10.79.0.12, each in a
  network and a UTS namespace, on bridge ``dssrbrge`` 10.79.0.1 (= ``gemaster``); the three names
  resolve forward and back through lines added to ``/etc/hosts`` (removed by ``down``);
* queue ``all.q`` (8 slots a host), parallel environment ``dssr`` (``allocation_rule 1``,
  ``control_slaves TRUE``: ``qrsh -inherit``), the service user ``jarvice`` an operator;
* the seed's users (jarvice, kirby, mario, dovahkiin) and scratch layout: a user is created only
  when missing, and removed by ``down`` only when this harness created it and no Slurm test
  cluster is up (then it is handed over to that cluster's ledger; the Slurm ``down`` does the same
  the other way round).

Nothing of the Slurm clusters (their bridges, namespaces, daemons, ports, state) is touched.
State: ``/run/dssr-ge-cluster``; scratch and ledger: ``/var/tmp/dssr-ge-cluster``; lock:
``/var/cache/dssr-test-cluster/ge-session.lock``.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import accounts, daemons, ledger, network, packages, scratch, sshd, state
from tests.cluster.accounts import SERVICE_USER
from tests.cluster.base import SYS_PATH, HarnessError, log, mkdir, port_open, sh, user_exists, wait_for, write
from tests.cluster.gecell import (
    BRIDGE,
    BRIDGE_IP,
    CELL,
    CELL_DIR,
    MASTER,
    NODES,
    PE,
    PORTS,
    QUEUE,
    SGE_ROOT,
    SLOTS,
    configure,
    ge_env,
    hosts_lines,
    in_master,
    in_node,
    login_sshd_config,
    make_cell,
    nodes_up,
    qconf,
    root_env,
    uts,
)
from tests.cluster.ledger import GRIDENGINE as LEDGER
from tests.cluster.locks import LOCK_GE, SessionLock
from tests.cluster.model import ClusterUser, TestIdP

KEY = "gridengine-8.1.9"
STATE = state.STATE_GE
DATA = state.DATA_GE
STATE_FILE = STATE / "cluster.json"
SCRATCH = DATA / "jxe_scratch"
PACKAGES = ["gridengine-master", "gridengine-exec", "gridengine-client", "openssh-server", "iproute2"]
IN_USE = Path("/run/sshd/.dssr-ge-cluster-in-use")
DAEMONS = ["sge_qmaster", "sge_execd-genode1", "sge_execd-genode2", "sshd"]
#: debconf answers: the packages' postinst must not make a cell of its own (the harness makes ``dssrge``)
PRESEED = "".join(
    f"{pkg} shared/{q} {kind} {value}\n"
    for pkg in ("gridengine-common", "gridengine-master", "gridengine-client", "gridengine-exec")
    for q, kind, value in (
        ("gridengineconfig", "boolean", "false"),
        ("gridenginecell", "string", "default"),
        ("gridenginemaster", "string", "localhost"),
    )
)


@dataclass(frozen=True)
class GECluster:
    name: str
    host: str
    ssh_port: int
    ssh_host_fingerprint: str
    known_hosts: Path
    service_user: str
    users: dict[str, ClusterUser]  # name -> ClusterUser
    jarvice_key: Path
    nodes: list[str]
    master: str
    queue: str
    pe: str
    slots_per_node: int
    scratch: Path
    sge_root: Path
    sge_cell: str
    accounting_file: Path
    idp: TestIdP
    state_dir: Path
    log_dir: Path
    ports: dict[str, int]
    version: str
    #: a copy of the Apptainer stand-in (tests/standin/apptainer), for JARVICE_SINGULARITY_BINARY; "" when absent
    standin: str = ""

    def env(self, user: str) -> dict[str, str]:
        home = "/root" if user == "root" else f"/home/{user}"
        return {
            "PATH": SYS_PATH,
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            **ge_env(),
        }

    def run(
        self,
        cmd: list[str] | str,
        user: str = SERVICE_USER,
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (argv or bash script) as ``user`` on the login node (host name ``gemaster``)."""
        script = cmd if isinstance(cmd, str) else shlex.join(cmd)
        argv = ["bash", "-c", 'cd "$HOME" 2>/dev/null || cd /tmp; ' + script]
        if user != "root":
            argv = ["runuser", "-u", user, "--"] + argv
        argv = ["nsenter", f"--uts={uts(MASTER)}"] + argv
        cp = subprocess.run(
            argv, env=self.env(user), cwd="/", capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and cp.returncode != 0:
            raise subprocess.CalledProcessError(cp.returncode, script, cp.stdout, cp.stderr)
        return cp

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until no job is left in the qmaster."""
        deadline = time.monotonic() + timeout
        while True:
            q = self.run(["qstat", "-u", "*"], user="root", check=False)
            if q.returncode == 0 and not q.stdout.strip():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Grid Engine not idle after {timeout}s: {q.stdout.strip()!r} {q.stderr!r}")
            time.sleep(0.5)

    def key_for(self, user: str) -> Path:
        return self.jarvice_key if user == self.service_user else self.users[user].key_path

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, TestIdP):
                v = dataclasses.asdict(v)
            elif f.name == "users":
                v = {k: {**dataclasses.asdict(u), "key_path": str(u.key_path)} for k, u in v.items()}
            d[f.name] = v
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GECluster:
        d = dict(d)
        for k in ("known_hosts", "jarvice_key", "scratch", "sge_root", "accounting_file", "state_dir", "log_dir"):
            d[k] = Path(d[k])
        d["idp"] = TestIdP(**d["idp"])
        d["users"] = {k: ClusterUser(**{**u, "key_path": Path(u["key_path"])}) for k, u in d["users"].items()}
        return cls(**d)


def ensure_packages() -> float:
    if packages.missing_packages(PACKAGES):
        sh(["debconf-set-selections"], input=PRESEED)
    return packages.ensure_packages(PACKAGES)


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return daemons.spawn(name, argv, state=STATE, env=env)


def _start_qmaster() -> subprocess.Popen[bytes]:
    qmaster = _spawn("sge_qmaster", in_master(["/usr/sbin/sge_qmaster"]), env=root_env(SGE_ND="1"))
    wait_for("sge_qmaster", lambda: qconf("-sh", check=False).returncode == 0, 60,
             STATE / "spool" / "qmaster" / "messages", [qmaster])  # fmt: skip
    return qmaster


def up() -> GECluster:
    why = packages.preflight(PACKAGES)
    if why:
        raise HarnessError(f"cluster tier: {why}")
    ensure_packages()
    if STATE.exists() or LEDGER.exists():
        log("Grid Engine: leftovers of an earlier run: cleaning first")
        down()
    t0 = time.monotonic()
    for d, mode in [(STATE, 0o755), (STATE / "etc", 0o755), (STATE / "keys", 0o700), (STATE / "ssh", 0o755),
                    (STATE / "authorized_keys", 0o755), (STATE / "pids", 0o700), (STATE / "log", 0o755),
                    (STATE / "uts", 0o755)]:  # fmt: skip
        mkdir(d, mode, 0, 0)
    mkdir(DATA, 0o755, 0, 0)
    uids = accounts.ensure_users(LEDGER)
    keys = STATE / "keys"
    accounts.user_keys(keys, STATE / "authorized_keys", "dssr-ge-test", False, False)
    ssh = STATE / "ssh"
    host_pub, known_hosts = sshd.host_key(ssh, "dssr-ge-test-host", PORTS["ssh"])
    sshd.ensure_privsep_dir(LEDGER)
    # sshd's privilege separation folder is compiled in and shared with the Slurm clusters' sshd:
    # a file in it keeps another harness's teardown (an rmdir) from removing it under our sshd.
    LEDGER.add("files", str(IN_USE))
    write(IN_USE, "dssr Grid Engine test cluster\n", 0o644, 0, 0)
    write(ssh / "sshd_config", login_sshd_config(ssh / "ssh_host_ed25519_key", STATE / "authorized_keys"))
    idp = accounts.make_idp(keys)

    LEDGER.add("netns", list(NODES))
    network.netns_setup(NODES, BRIDGE, BRIDGE_IP)
    for n in [MASTER, *NODES]:
        network.make_uts(uts(n), n)
    network.add_hosts(hosts_lines(), LEDGER)
    make_cell()
    qmaster = _start_qmaster()
    configure()
    execds = [_spawn(f"sge_execd-{n}", in_node(n, ["/usr/sbin/sge_execd"]), env=root_env(SGE_ND="1")) for n in NODES]
    sshd_argv = ["/usr/sbin/sshd", "-D", "-f", str(ssh / "sshd_config"), "-E", str(STATE / "log" / "sshd.log")]
    sshd_p = _spawn("sshd", in_master(sshd_argv))
    mkdir(SCRATCH.parent, 0o755, 0, 0)
    scratch.scratch_layout(SCRATCH, 0o2770)
    standin = scratch.install_standin(STATE / "standin")
    messages = STATE / "spool" / "qmaster" / "messages"
    wait_for("execd hosts reporting", nodes_up, 60, messages, [qmaster, *execds])
    wait_for("sshd", lambda: port_open("127.0.0.1", PORTS["ssh"]), 20, STATE / "log" / "sshd.log", [sshd_p])
    version = sh(in_master(["/usr/bin/qstat", "-help"]), env=root_env(), check=False).stdout.split("\n")[0]
    cluster = GECluster(
        name=KEY, host="127.0.0.1", ssh_port=PORTS["ssh"], ssh_host_fingerprint=accounts.fingerprint(host_pub),
        known_hosts=known_hosts, service_user=SERVICE_USER, users=accounts.cluster_users(keys, uids, False),
        jarvice_key=keys / f"{SERVICE_USER}_ed25519", nodes=list(NODES), master=MASTER, queue=QUEUE, pe=PE,
        slots_per_node=SLOTS, scratch=SCRATCH, sge_root=SGE_ROOT, sge_cell=CELL,
        accounting_file=CELL_DIR / "common" / "accounting", idp=idp, state_dir=STATE, log_dir=STATE / "log",
        ports=dict(PORTS), version=version.strip(), standin=str(standin or ""),
    )  # fmt: skip
    state.update(STATE_FILE, {KEY: cluster.to_json()}, 0o644)
    log(f"{cluster.version} cluster up in {time.monotonic() - t0:.1f}s")
    return cluster


def set_last_jobid(last: int) -> None:
    """Restart the qmaster with ``last`` as the last job id given (its ``jobseqnum`` file): the next is
    ``last + 1``, or 1 after 9,999,999.  For the tests of the id wrap."""
    qconf("-km")
    wait_for("sge_qmaster to stop", lambda: not daemons.pidfile_alive("sge_qmaster", STATE), 30)
    write(STATE / "spool" / "qmaster" / "jobseqnum", f"{last}\n", 0o644, "sgeadmin", "sgeadmin")
    qmaster = _start_qmaster()
    wait_for("execd hosts reporting", nodes_up, 60, STATE / "spool" / "qmaster" / "messages", [qmaster])


# --------------------------------------------------------------------------- state, teardown
def status() -> dict[str, Any]:
    d: dict[str, Any] = {
        "state_file": STATE_FILE.exists(),
        "daemons": {n: daemons.pidfile_alive(n, STATE) for n in DAEMONS},
    }
    d["alive_ge"] = d["state_file"] and all(d["daemons"].values())
    return d


def load() -> GECluster | None:
    record = state.entry(STATE_FILE, KEY)
    return None if record is None else GECluster.from_json(record)


def alive() -> bool:
    return bool(status()["alive_ge"]) and load() is not None


def _ours(created_uids: set[int]) -> set[int]:
    """Our daemons (pid files), whatever runs in our network or UTS namespaces, and their descendants."""
    pids = daemons.pidfile_pids(STATE)
    inodes = {("net", ino) for ino in network.netns_inodes(list(NODES))}
    for n in [MASTER, *NODES]:
        try:
            if os.path.ismount(uts(n)):
                inodes.add(("uts", os.stat(uts(n)).st_ino))
        except OSError:
            pass
    me = os.getpid()
    for pid in daemons.all_pids():
        if pid == me:
            continue
        try:
            if any(daemons.ns_inode(pid, kind) == ino for kind, ino in inodes):
                pids.add(pid)
            elif created_uids and os.stat(f"/proc/{pid}").st_uid in created_uids:
                pids.add(pid)
        except OSError:
            pass
    return daemons.with_descendants(pids)


def down() -> float:
    """Stop and remove everything ``up`` made (also after a crash); touches nothing of the Slurm clusters."""
    t0 = time.monotonic()
    led = LEDGER.read()
    slurm_up = state.STATE_2205.exists()  # a Slurm 22.05 cluster (alive or not) runs jobs as the same users
    mine = [u for u in led.get("users", []) if user_exists(u)]
    if daemons.pidfile_alive("sge_qmaster", STATE):
        qconf("-km", check=False)  # the qmaster takes seconds over a TERM, a shutdown request less
        wait_for("sge_qmaster to stop", lambda: not daemons.pidfile_alive("sge_qmaster", STATE), 10)
    daemons.kill(_ours(set() if slurm_up else accounts.created_uids(led)))
    for n in [MASTER, *NODES]:
        if os.path.ismount(uts(n)):
            sh(["umount", str(uts(n))], check=False)
    network.netns_remove(list(NODES), BRIDGE)
    for f in led.get("files", []):
        Path(f).unlink(missing_ok=True)
    if led.get("hosts_lines"):
        network.remove_hosts(led["hosts_lines"])
    for tree in led.get("dirs_tree", []):
        shutil.rmtree(tree, ignore_errors=True)
    if slurm_up:
        ledger.hand_over(led, to=ledger.SLURM, users=mine)
    else:
        accounts.undo({**led, "users": mine})
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    dt = time.monotonic() - t0
    log(f"Grid Engine down in {dt:.1f}s")
    return dt


def save_logs() -> Path | None:
    if not STATE.exists():
        return None
    return state.keep_logs(
        "dssr-ge-cluster", {"": STATE / "log"}, {"qmaster-messages": STATE / "spool" / "qmaster" / "messages"}
    )


def session_lock(shared: bool = False, timeout: float = 1200) -> SessionLock:
    return SessionLock(timeout=timeout, shared=shared, path=LOCK_GE)
