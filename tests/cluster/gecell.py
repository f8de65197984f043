"""The Grid Engine cell ``dssrge`` of the Grid Engine test cluster: its configuration, its commands, its names.

The qmaster and the login node's sshd run in a UTS namespace named ``gemaster`` on the host network; each
execd in the network and UTS namespaces of its node (``genode1``, ``genode2``). Every client command runs
with the host name the qmaster knows (Grid Engine refuses a client whose name and address disagree).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from tests.cluster import state
from tests.cluster.accounts import SERVICE_USER
from tests.cluster.base import SYS_PATH, mkdir, sh, write
from tests.cluster.ledger import GRIDENGINE as LEDGER
from tests.cluster.network import netns_path
from tests.cluster.sshd import sshd_config

STATE = state.STATE_GE
SGE_ROOT = Path("/var/lib/gridengine")
CELL = "dssrge"
CELL_DIR = SGE_ROOT / CELL
BRIDGE, BRIDGE_IP = "dssrbrge", "10.79.0.1"
MASTER = "gemaster"
NODES = {"genode1": "10.79.0.11", "genode2": "10.79.0.12"}
PORTS = {"qmaster": 16444, "execd": 16445, "ssh": 22444}
QUEUE, PE, SLOTS = "all.q", "dssr", 8
HOSTS_TAG = "# dssr-ge-cluster"


def ge_env() -> dict[str, str]:
    """What every Grid Engine command and daemon of this cluster needs."""
    return {
        "SGE_ROOT": str(SGE_ROOT),
        "SGE_CELL": CELL,
        "SGE_QMASTER_PORT": str(PORTS["qmaster"]),
        "SGE_EXECD_PORT": str(PORTS["execd"]),
    }


def uts(node: str) -> Path:
    return STATE / "uts" / node


def in_master(argv: list[str]) -> list[str]:
    return ["nsenter", f"--uts={uts(MASTER)}", *argv]


def in_node(node: str, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={netns_path(node)}", f"--uts={uts(node)}", *argv]


def root_env(**extra: str) -> dict[str, str]:
    return {"PATH": SYS_PATH, "LANG": "C.UTF-8", "HOME": "/root", **ge_env(), **extra}


def qconf(*args: str, editor: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``qconf`` as root on the login node; ``editor``: a sed script that edits the object qconf opens."""
    env = root_env()
    if editor is not None:
        script = write(STATE / "etc" / "editor.sh", f'#!/bin/sh\nexec sed -i {shlex.quote(editor)} "$1"\n', 0o755)
        env["EDITOR"] = str(script)
    return sh(in_master(["/usr/bin/qconf", *args]), env=env, check=check, timeout=60)


def make_cell() -> None:
    """A new cell (what ``init_cluster`` does, with our own spool and a bootstrap file)."""
    spool = mkdir(STATE / "spool", 0o755, "sgeadmin", "sgeadmin")
    for d in ("qmaster", "qmaster/job_scripts", "spooldb", "execd"):
        mkdir(spool / d, 0o755, "sgeadmin", "sgeadmin")
    LEDGER.add("dirs_tree", str(CELL_DIR))
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
            line = (
                "reporting_params       accounting=true reporting=false flush_time=00:00:01 joblog=false "
                "sharelog=00:00:00 accounting_flush_time=00:00:00"
            )
        elif key == "load_report_time":
            line = "load_report_time       00:00:05"
        lines.append(line)
    conf_file = write(STATE / "etc" / "global.conf", "\n".join(lines) + "\n", 0o644)
    env = root_env()
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
    qconf(
        "-msconf",
        editor="s/^schedule_interval .*/schedule_interval 0:0:1/;"
        "s/^flush_submit_sec .*/flush_submit_sec 1/;s/^flush_finish_sec .*/flush_finish_sec 1/",
    )
    qconf("-Ap", str(write(STATE / "etc" / "pe.conf", PE_CONF, 0o644)))
    qconf(
        "-aq",
        QUEUE,
        editor=f"s/^hostlist .*/hostlist {' '.join(NODES)}/;s/^slots .*/slots {SLOTS}/;"
        f"s/^pe_list .*/pe_list {PE}/;s|^shell .*|shell /bin/bash|;"
        "s/^shell_start_mode .*/shell_start_mode unix_behavior/;"
        # the machine is shared: its load must not put the queues in alarm
        "s/^load_thresholds .*/load_thresholds NONE/",
    )


def login_sshd_config(host_key: Path, authorized: Path) -> str:
    """The Slurm clusters' sshd configuration, with Grid Engine's environment instead of SLURM_CONF."""
    text = sshd_config(
        port=PORTS["ssh"],
        host_key=host_key,
        pid_file=STATE / "ssh" / "sshd.pid",
        authorized_keys=authorized,
        slurm_conf="",
    )
    env = " ".join(f"{k}={v}" for k, v in ge_env().items())
    return "\n".join(f"SetEnv {env}" if ln.startswith("SetEnv ") else ln for ln in text.splitlines()) + "\n"


def nodes_up() -> bool:
    """Every execd reports, and every queue instance takes jobs (no state letter: not unknown, alarm...)."""
    cp = sh(in_master(["/usr/bin/qhost"]), env=root_env(), check=False, quiet_fail=True)
    loads = {ln.split()[0]: ln.split()[6] for ln in cp.stdout.splitlines()[3:] if len(ln.split()) > 6}
    if cp.returncode != 0 or any(loads.get(n, "-") == "-" for n in NODES):
        return False
    cp = sh(in_master(["/usr/bin/qstat", "-f", "-q", QUEUE]), env=root_env(), check=False, quiet_fail=True)
    rows = {ln.split()[0]: ln.split()[5:] for ln in cp.stdout.splitlines() if ln.startswith(QUEUE + "@")}
    return all(rows.get(f"{QUEUE}@{n}") == [] for n in NODES)


def hosts_lines() -> list[str]:
    """The lines /etc/hosts gets for the master and the nodes (forward and back resolution)."""
    return [f"{BRIDGE_IP} {MASTER} {HOSTS_TAG}", *(f"{ip} {n} {HOSTS_TAG}" for n, ip in NODES.items())]
