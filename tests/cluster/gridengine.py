"""The Grid Engine test cluster: Debian 12's Grid Engine 8.1.9, started by the test suite.

    python tests/cluster/harness.py up-ge       # bring it up (beside the Slurm clusters)
    python tests/cluster/harness.py down-ge     # stop it and clean, also after a crash
    python tests/cluster/harness.py status-ge

Layout (docs/test-cluster.md):

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
import grp
import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import harness
from tests.cluster.harness import (
    CACHE,
    SERVICE_USER,
    SYS_PATH,
    USERS,
    ClusterUser,
    HarnessError,
    TestIdP,
    log,
    mkdir,
    port_open,
    sh,
    wait_for,
    write,
)

KEY = "gridengine-8.1.9"
STATE = Path("/run/dssr-ge-cluster")
DATA = Path("/var/tmp/dssr-ge-cluster")
LEDGER = DATA / "ledger.json"
STATE_FILE = STATE / "cluster.json"
SCRATCH = DATA / "jxe_scratch"
LOCK_FILE = CACHE / "ge-session.lock"
PACKAGES = ["gridengine-master", "gridengine-exec", "gridengine-client", "openssh-server", "iproute2"]
SGE_ROOT = Path("/var/lib/gridengine")
CELL = "dssrge"
CELL_DIR = SGE_ROOT / CELL
BRIDGE, BRIDGE_IP = "dssrbrge", "10.79.0.1"
MASTER = "gemaster"
NODES = {"genode1": "10.79.0.11", "genode2": "10.79.0.12"}
PORTS = {"qmaster": 16444, "execd": 16445, "ssh": 22444}
QUEUE, PE, SLOTS = "all.q", "dssr", 8
HOSTS_TAG = "# dssr-ge-cluster"
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


def ge_env() -> dict[str, str]:
    """What every Grid Engine command and daemon of this cluster needs."""
    return {
        "SGE_ROOT": str(SGE_ROOT),
        "SGE_CELL": CELL,
        "SGE_QMASTER_PORT": str(PORTS["qmaster"]),
        "SGE_EXECD_PORT": str(PORTS["execd"]),
    }


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
        return {"PATH": SYS_PATH, "HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash",
                "LANG": "C.UTF-8", **ge_env()}

    def run(self, cmd: list[str] | str, user: str = SERVICE_USER, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (argv or bash script) as ``user`` on the login node (host name ``gemaster``)."""
        script = cmd if isinstance(cmd, str) else shlex.join(cmd)
        argv = ["bash", "-c", 'cd "$HOME" 2>/dev/null || cd /tmp; ' + script]
        if user != "root":
            argv = ["runuser", "-u", user, "--"] + argv
        argv = ["nsenter", f"--uts={_uts(MASTER)}"] + argv
        cp = subprocess.run(argv, env=self.env(user), cwd="/", capture_output=True, text=True,
                            timeout=timeout, input=input)
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
    def from_json(cls, d: dict[str, Any]) -> "GECluster":
        d = dict(d)
        for k in ("known_hosts", "jarvice_key", "scratch", "sge_root", "accounting_file", "state_dir", "log_dir"):
            d[k] = Path(d[k])
        d["idp"] = TestIdP(**d["idp"])
        d["users"] = {k: ClusterUser(**{**u, "key_path": Path(u["key_path"])}) for k, u in d["users"].items()}
        return cls(**d)


# --------------------------------------------------------------------------- ledger (our own)
def ledger() -> dict[str, Any]:
    try:
        led: dict[str, Any] = json.loads(LEDGER.read_text())
        return led
    except (FileNotFoundError, ValueError):
        return {}


def ledger_add(kind: str, item: Any) -> None:
    """Record a change to the machine *before* making it, so that ``down`` undoes it after any crash."""
    mkdir(DATA, 0o755, 0, 0)
    d = ledger()
    d.setdefault(kind, [])
    if item not in d[kind]:
        d[kind].append(item)
    write(LEDGER, json.dumps(d, indent=1), 0o600)


def adopt_users(users: list[str], group_members: list[Any], passwords: list[Any]) -> None:
    """Take over users another test cluster created (its ``down`` leaves them while this one is up)."""
    for u in users:
        ledger_add("users", u)
    for gm in group_members:
        ledger_add("group_members", gm)
    for pw in passwords:
        ledger_add("passwords", pw)


# --------------------------------------------------------------------------- pieces
def _uts(node: str) -> Path:
    return STATE / "uts" / node


def _in_master(argv: list[str]) -> list[str]:
    return ["nsenter", f"--uts={_uts(MASTER)}", *argv]


def _in_node(node: str, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net=/run/netns/dssr-{node}", f"--uts={_uts(node)}", *argv]


def _root_env(**extra: str) -> dict[str, str]:
    return {"PATH": SYS_PATH, "LANG": "C.UTF-8", "HOME": "/root", **ge_env(), **extra}


def qconf(*args: str, editor: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``qconf`` as root on the login node; ``editor``: a sed script that edits the object qconf opens."""
    env = _root_env()
    if editor is not None:
        script = write(STATE / "etc" / "editor.sh", f"#!/bin/sh\nexec sed -i {shlex.quote(editor)} \"$1\"\n", 0o755)
        env["EDITOR"] = str(script)
    return sh(_in_master(["/usr/bin/qconf", *args]), env=env, check=check, timeout=60)


def ensure_packages() -> float:
    missing = harness.missing_packages(PACKAGES)
    if missing:
        sh(["debconf-set-selections"], input=PRESEED)
    return harness.ensure_packages(PACKAGES)


def ensure_users() -> dict[str, int]:
    """The seed's users: created only when missing (and then recorded), jarvice in each user's group."""
    uids = {}
    for name in [SERVICE_USER, *USERS]:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            ledger_add("users", name)
            sh(["useradd", "-m", "-U", "-s", "/bin/bash", "-c", f"dssr test user {name}", name])
            pw = pwd.getpwnam(name)
        shadow = sh(["getent", "shadow", name]).stdout.split(":")
        if len(shadow) > 1 and (shadow[1].startswith("!") or shadow[1] == ""):
            if name not in ledger().get("users", []):
                ledger_add("passwords", [name, shadow[1]])
            sh(["usermod", "-p", "*", name])  # sshd (UsePAM no) refuses a locked account
        uids[name] = pw.pw_uid
    for name in USERS:
        g = grp.getgrgid(pwd.getpwnam(name).pw_gid)
        if SERVICE_USER not in g.gr_mem:
            ledger_add("group_members", [SERVICE_USER, g.gr_name])
            sh(["gpasswd", "-a", SERVICE_USER, g.gr_name])
    return uids


def _hosts_lines() -> list[str]:
    return [f"{BRIDGE_IP} {MASTER} {HOSTS_TAG}", *(f"{ip} {n} {HOSTS_TAG}" for n, ip in NODES.items())]


def add_hosts() -> None:
    hosts = Path("/etc/hosts")
    text = hosts.read_text()
    for line in _hosts_lines():
        name = line.split()[1]
        if any(name in ln.split()[1:] for ln in text.splitlines() if ln.strip() and not ln.startswith("#")):
            if line not in text.splitlines():
                raise HarnessError(f"/etc/hosts already names {name} otherwise: not changed")
            continue
        ledger_add("hosts_lines", line)
        text = text.rstrip("\n") + "\n" + line + "\n"
    with open(hosts, "r+") as f:  # in place: /etc/hosts may be a bind mount
        f.seek(0)
        f.write(text)
        f.truncate()


def remove_hosts(lines: list[str]) -> None:
    hosts = Path("/etc/hosts")
    kept = [ln for ln in hosts.read_text().splitlines() if ln not in lines]
    with open(hosts, "r+") as f:
        f.seek(0)
        f.write("\n".join(kept) + "\n")
        f.truncate()


def make_uts(node: str) -> None:
    path = _uts(node)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    sh(["unshare", f"--uts={path}", "hostname", node])


def make_cell() -> None:
    """A new cell (what ``init_cluster`` does, with our own spool and a bootstrap file)."""
    spool = mkdir(STATE / "spool", 0o755, "sgeadmin", "sgeadmin")
    for d in ("qmaster", "qmaster/job_scripts", "spooldb", "execd"):
        mkdir(spool / d, 0o755, "sgeadmin", "sgeadmin")
    ledger_add("dirs_tree", str(CELL_DIR))
    common = mkdir(CELL_DIR / "common", 0o755, "sgeadmin", "sgeadmin")
    mkdir(CELL_DIR, 0o755, "sgeadmin", "sgeadmin")
    bootstrap = Path("/usr/share/gridengine/default-bootstrap").read_text()
    bootstrap = bootstrap.replace("/var/spool/gridengine/spooldb", str(spool / "spooldb"))
    bootstrap = bootstrap.replace("/var/spool/gridengine/qmaster", str(spool / "qmaster"))
    write(common / "bootstrap", bootstrap, 0o644)
    write(common / "act_qmaster", MASTER + "\n", 0o644, "sgeadmin", "sgeadmin")
    write(common / "settings.sh", "".join(f"{k}={v}; export {k}\n" for k, v in ge_env().items()), 0o644)
    conf = Path("/usr/share/gridengine/default-configuration").read_text()
    conf = conf.replace("/var/spool/gridengine/execd", str(spool / "execd"))
    lines = []
    for line in conf.splitlines():
        key = line.split(" ", 1)[0]
        if key == "reporting_params":  # accounting on, written at once
            line = ("reporting_params       accounting=true reporting=false flush_time=00:00:01 joblog=false "
                    "sharelog=00:00:00 accounting_flush_time=00:00:00")
        elif key == "load_report_time":
            line = "load_report_time       00:00:05"
        lines.append(line)
    conf_file = write(STATE / "etc" / "global.conf", "\n".join(lines) + "\n", 0o644)
    env = _root_env()
    steps = [
        ["/usr/lib/gridengine/spoolinit", "berkeleydb", "libspoolb", str(spool / "spooldb"), "init"],
        ["/usr/lib/gridengine/spooldefaults", "configuration", str(conf_file)],
        ["/usr/lib/gridengine/spooldefaults", "complexes", "/usr/share/gridengine/util/resources/centry"],
        ["/usr/lib/gridengine/spooldefaults", "usersets", "/usr/share/gridengine/util/resources/usersets"],
        ["/usr/lib/gridengine/spooldefaults", "managers", "root", "sgeadmin"],
    ]
    for argv in steps:
        sh(["setpriv", "--reuid=sgeadmin", "--regid=sgeadmin", "--init-groups", *argv], env=env)


PE_CONF = f"""pe_name            {PE}
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    1
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
"""


def configure() -> None:
    """Hosts, operator, scheduler pace, parallel environment and queue (the qmaster answers)."""
    qconf("-as", MASTER)
    for n in NODES:
        qconf("-ah", n)
    qconf("-ao", SERVICE_USER)
    qconf("-msconf", editor="s/^schedule_interval .*/schedule_interval 0:0:1/;"
                            "s/^flush_submit_sec .*/flush_submit_sec 1/;s/^flush_finish_sec .*/flush_finish_sec 1/")
    qconf("-Ap", str(write(STATE / "etc" / "pe.conf", PE_CONF, 0o644)))
    qconf("-aq", QUEUE, editor=f"s/^hostlist .*/hostlist {' '.join(NODES)}/;s/^slots .*/slots {SLOTS}/;"
                               f"s/^pe_list .*/pe_list {PE}/;s|^shell .*|shell /bin/bash|;"
                               "s/^shell_start_mode .*/shell_start_mode unix_behavior/;"
                               # the machine is shared: its load must not put the queues in alarm
                               "s/^load_thresholds .*/load_thresholds NONE/")


def _sshd_config(host_key: Path, authorized: Path) -> str:
    text = harness.sshd_config(port=PORTS["ssh"], host_key=host_key, pid_file=STATE / "ssh" / "sshd.pid",
                               authorized_keys=authorized, slurm_conf="")
    env = " ".join(f"{k}={v}" for k, v in ge_env().items())
    return "\n".join(f"SetEnv {env}" if ln.startswith("SetEnv ") else ln for ln in text.splitlines()) + "\n"


def _nodes_up() -> bool:
    """Every execd reports, and every queue instance takes jobs (no state letter: not unknown, alarm...)."""
    cp = sh(_in_master(["/usr/bin/qhost"]), env=_root_env(), check=False, quiet_fail=True)
    loads = {ln.split()[0]: ln.split()[6] for ln in cp.stdout.splitlines()[3:] if len(ln.split()) > 6}
    if cp.returncode != 0 or any(loads.get(n, "-") == "-" for n in NODES):
        return False
    cp = sh(_in_master(["/usr/bin/qstat", "-f", "-q", QUEUE]), env=_root_env(), check=False, quiet_fail=True)
    rows = {ln.split()[0]: ln.split()[5:] for ln in cp.stdout.splitlines() if ln.startswith(QUEUE + "@")}
    return all(rows.get(f"{QUEUE}@{n}") == [] for n in NODES)


def up() -> GECluster:
    why = harness.preflight(PACKAGES)
    if why:
        raise HarnessError(f"cluster tier: {why}")
    ensure_packages()
    if STATE.exists() or LEDGER.exists():
        log("Grid Engine: leftovers of an earlier run: cleaning first")
        down()
    t0 = time.monotonic()
    for d, mode in [(STATE, 0o755), (STATE / "etc", 0o755), (STATE / "keys", 0o700), (STATE / "ssh", 0o755),
                    (STATE / "authorized_keys", 0o755), (STATE / "pids", 0o700), (STATE / "log", 0o755),
                    (STATE / "uts", 0o755)]:
        mkdir(d, mode, 0, 0)
    mkdir(DATA, 0o755, 0, 0)
    uids = ensure_users()
    keys = STATE / "keys"
    for u in [SERVICE_USER, *USERS]:
        harness.keygen(keys / f"{u}_ed25519", "ed25519", f"{u}@dssr-ge-test")
        write(STATE / "authorized_keys" / u, (keys / f"{u}_ed25519.pub").read_text(), 0o644, 0, 0)
    ssh = STATE / "ssh"
    harness.keygen(ssh / "ssh_host_ed25519_key", "ed25519", "dssr-ge-test-host")
    host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().strip()
    known_hosts = write(ssh / "known_hosts", f"[127.0.0.1]:{PORTS['ssh']} {' '.join(host_pub.split()[:2])}\n")
    if not Path("/run/sshd").exists():
        ledger_add("dirs", "/run/sshd")
        mkdir(Path("/run/sshd"), 0o755, 0, 0)
    # sshd's privilege separation folder is compiled in and shared with the Slurm clusters' sshd:
    # a file in it keeps another harness's teardown (an rmdir) from removing it under our sshd.
    ledger_add("files", str(IN_USE))
    write(IN_USE, "dssr Grid Engine test cluster\n", 0o644, 0, 0)
    write(ssh / "sshd_config", _sshd_config(ssh / "ssh_host_ed25519_key", STATE / "authorized_keys"))
    idp = harness.make_idp(keys)

    ledger_add("netns", list(NODES))
    harness.netns_setup(NODES, bridge=BRIDGE, bridge_ip=BRIDGE_IP)
    for n in [MASTER, *NODES]:
        make_uts(n)
    add_hosts()
    make_cell()
    qmaster = harness.spawn("sge_qmaster", _in_master(["/usr/sbin/sge_qmaster"]), env=_root_env(SGE_ND="1"),
                            state=STATE)
    wait_for("sge_qmaster", lambda: qconf("-sh", check=False).returncode == 0, 60,
             STATE / "spool" / "qmaster" / "messages", [qmaster])
    configure()
    execds = [harness.spawn(f"sge_execd-{n}", _in_node(n, ["/usr/sbin/sge_execd"]), env=_root_env(SGE_ND="1"),
                            state=STATE) for n in NODES]
    sshd = harness.spawn("sshd", _in_master(["/usr/sbin/sshd", "-D", "-f", str(ssh / "sshd_config"),
                                             "-E", str(STATE / "log" / "sshd.log")]), state=STATE)
    mkdir(SCRATCH.parent, 0o755, 0, 0)
    harness._scratch_layout(SCRATCH, 0o2770)
    standin = harness.install_standin(STATE / "standin")
    wait_for("execd hosts reporting", _nodes_up, 60, STATE / "spool" / "qmaster" / "messages", [qmaster, *execds])
    wait_for("sshd", lambda: port_open("127.0.0.1", PORTS["ssh"]), 20, STATE / "log" / "sshd.log", [sshd])
    version = sh(_in_master(["/usr/bin/qstat", "-help"]), env=_root_env(), check=False).stdout.split("\n")[0]
    cluster = GECluster(
        name=KEY, host="127.0.0.1", ssh_port=PORTS["ssh"], ssh_host_fingerprint=harness.fingerprint(host_pub),
        known_hosts=known_hosts, service_user=SERVICE_USER,
        users={u: ClusterUser(name=u, email=f"{u}@example.com", account="", key_path=keys / f"{u}_ed25519",
                              uid=uids[u]) for u in USERS},
        jarvice_key=keys / f"{SERVICE_USER}_ed25519", nodes=list(NODES), master=MASTER, queue=QUEUE, pe=PE,
        slots_per_node=SLOTS, scratch=SCRATCH, sge_root=SGE_ROOT, sge_cell=CELL,
        accounting_file=CELL_DIR / "common" / "accounting", idp=idp, state_dir=STATE, log_dir=STATE / "log",
        ports=dict(PORTS), version=version.strip(), standin=str(standin or ""))
    write(STATE_FILE, json.dumps({KEY: cluster.to_json()}, indent=1), 0o644)
    log(f"{cluster.version} cluster up in {time.monotonic() - t0:.1f}s")
    return cluster


def set_last_jobid(last: int) -> None:
    """Restart the qmaster with ``last`` as the last job id given (its ``jobseqnum`` file): the next is
    ``last + 1``, or 1 after 9,999,999.  For the tests of the id wrap."""
    qconf("-km")
    wait_for("sge_qmaster to stop", lambda: not harness._pidfile_alive("sge_qmaster", STATE), 30)
    write(STATE / "spool" / "qmaster" / "jobseqnum", f"{last}\n", 0o644, "sgeadmin", "sgeadmin")
    qmaster = harness.spawn("sge_qmaster", _in_master(["/usr/sbin/sge_qmaster"]), env=_root_env(SGE_ND="1"),
                            state=STATE)
    wait_for("sge_qmaster", lambda: qconf("-sh", check=False).returncode == 0, 60,
             STATE / "spool" / "qmaster" / "messages", [qmaster])
    wait_for("execd hosts reporting", _nodes_up, 60, STATE / "spool" / "qmaster" / "messages", [qmaster])


# --------------------------------------------------------------------------- state, teardown
def status() -> dict[str, Any]:
    d: dict[str, Any] = {"state_file": STATE_FILE.exists(),
                         "daemons": {n: harness._pidfile_alive(n, STATE) for n in DAEMONS}}
    d["alive_ge"] = d["state_file"] and all(d["daemons"].values())
    return d


def load() -> GECluster | None:
    try:
        return GECluster.from_json(json.loads(STATE_FILE.read_text())[KEY])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def alive() -> bool:
    return bool(status()["alive_ge"]) and load() is not None


def _ours(created_uids: set[int]) -> set[int]:
    """Our daemons (pid files), whatever runs in our network or UTS namespaces, and their descendants."""
    pids: set[int] = set()
    for f in (STATE / "pids").glob("*.pid") if (STATE / "pids").exists() else []:
        try:
            pid = int(json.loads(f.read_text())["pid"])
            if Path(f"/proc/{pid}").exists():
                pids.add(pid)
        except (ValueError, KeyError, OSError):
            pass
    inodes = set()
    for n in NODES:
        try:
            inodes.add(("net", os.stat(f"/run/netns/dssr-{n}").st_ino))
        except OSError:
            pass
    for n in [MASTER, *NODES]:
        try:
            if os.path.ismount(_uts(n)):
                inodes.add(("uts", os.stat(_uts(n)).st_ino))
        except OSError:
            pass
    me = os.getpid()
    for pid in harness._all_pids():
        if pid == me:
            continue
        try:
            if any(os.stat(f"/proc/{pid}/ns/{kind}").st_ino == ino for kind, ino in inodes):
                pids.add(pid)
            elif created_uids and os.stat(f"/proc/{pid}").st_uid in created_uids:
                pids.add(pid)
        except OSError:
            pass
    return harness.with_descendants(pids)


def down() -> float:
    """Stop and remove everything ``up`` made (also after a crash); touches nothing of the Slurm clusters."""
    t0 = time.monotonic()
    led = ledger()
    slurm_up = harness.alive("slurm-22.05") or harness.STATE.exists()
    mine = [u for u in led.get("users", []) if _user_exists(u)]
    created = set() if slurm_up else {pwd.getpwnam(u).pw_uid for u in mine}
    if harness._pidfile_alive("sge_qmaster", STATE):
        qconf("-km", check=False)  # the qmaster takes seconds over a TERM, a shutdown request less
        wait_for("sge_qmaster to stop", lambda: not harness._pidfile_alive("sge_qmaster", STATE), 10)
    harness._kill(_ours(created))
    for n in [MASTER, *NODES]:
        if os.path.ismount(_uts(n)):
            sh(["umount", str(_uts(n))], check=False)
    for n in NODES:
        if Path(f"/run/netns/dssr-{n}").exists():
            sh(["ip", "netns", "del", f"dssr-{n}"], check=False)
        if sh(["ip", "link", "show", f"dssrh-{n}"], check=False, quiet_fail=True).returncode == 0:
            sh(["ip", "link", "del", f"dssrh-{n}"], check=False)
    if sh(["ip", "link", "show", BRIDGE], check=False, quiet_fail=True).returncode == 0:
        sh(["ip", "link", "del", BRIDGE], check=False)
    for f in led.get("files", []):
        Path(f).unlink(missing_ok=True)
    if led.get("hosts_lines"):
        remove_hosts(led["hosts_lines"])
    for tree in led.get("dirs_tree", []):
        shutil.rmtree(tree, ignore_errors=True)
    if slurm_up:
        hand_over_users(led, mine)
    else:
        for user, group in led.get("group_members", []):
            if group not in mine and harness._group_exists(group):
                sh(["gpasswd", "-d", user, group], check=False)
        for user, field_ in led.get("passwords", []):
            if user not in mine and _user_exists(user):
                sh(["usermod", "-p", field_, user], check=False)
        for u in mine:
            sh(["userdel", "-r", "-f", u], check=False)
            if harness._group_exists(u):
                sh(["groupdel", u], check=False, quiet_fail=True)
        for d in led.get("dirs", []):
            try:
                os.rmdir(d)
            except OSError:
                pass
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)
    dt = time.monotonic() - t0
    log(f"Grid Engine down in {dt:.1f}s")
    return dt


def hand_over_users(led: dict[str, Any], users: list[str]) -> None:
    """The Slurm cluster's ledger takes over the ``users`` we created, and their groups, passwords and dirs."""
    for u in users:
        harness.ledger_add("users", u)
    for kind in ("group_members", "passwords", "dirs"):
        for item in led.get(kind, []):
            harness.ledger_add(kind, item)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def save_logs() -> Path | None:
    if not STATE.exists():
        return None
    keep = Path(f"/tmp/dssr-ge-cluster-failed-logs-{int(time.time())}")
    if (STATE / "log").exists():
        shutil.copytree(STATE / "log", keep, dirs_exist_ok=True)
    messages = STATE / "spool" / "qmaster" / "messages"
    if messages.exists():
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(messages, keep / "qmaster-messages")
    return keep


def session_lock(shared: bool = False, timeout: float = 1200) -> harness.SessionLock:
    return harness.SessionLock(timeout=timeout, shared=shared, path=LOCK_FILE)
