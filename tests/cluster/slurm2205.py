"""The Slurm 22.05 cluster ``dssr``: Debian 12's Slurm on the host.

slurmctld on the bridge ``dssrbr0`` (10.77.0.1), two ``slurmd`` in network + UTS namespaces
(node1 10.77.0.11, node2 10.77.0.12), slurmdbd on a private MariaDB (127.0.0.1:7306), slurmrestd on
127.0.0.1:6820 (JWT), sshd on 127.0.0.1:22022 (keys only). The 24.11 cluster (slurm2411.py) shares its
state dir, ledger, users, MariaDB and sshd; slurm.py brings the two up and down as one.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cluster import accounts, daemons, network, scratch, slurmconf, sshd, state
from tests.cluster.accounts import SERVICE_USER
from tests.cluster.base import SYS_PATH, HarnessError, log, mkdir, port_open, sh, wait_for, write
from tests.cluster.ledger import SLURM as LEDGER
from tests.cluster.model import Cluster
from tests.cluster.slurmconf import MIN_JOB_AGE, NODE_CPUS, NODE_GPUS, SCALE_CPUS

KEY = "slurm-22.05"
STATE = state.STATE_2205  # configs, keys, logs, spool, DB (root, 0755)
DATA = state.DATA_2205  # scratch roots + ledger (shared with the 24.11 chroot)
STATE_FILE = STATE / "cluster.json"
SCRATCH = DATA / "jxe_scratch"
SCRATCH_ACL = DATA / "jxe_scratch_acl"
BRIDGE, BRIDGE_IP = "dssrbr0", "10.77.0.1"
NODES = {"node1": "10.77.0.11", "node2": "10.77.0.12"}
SSH_PORT = 22022
MYSQL_PORT = 7306
PORTS_2205 = {"ctld": 6817, "slurmd": 6818, "dbd": 6819, "restd": 6820}
CORE_2205 = ["mariadb", "sshd", "munged", "slurmdbd", "slurmctld", "slurmrestd", *[f"slurmd-{n}" for n in NODES]]


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A daemon of this cluster (pid file under STATE/pids)."""
    return daemons.spawn(name, argv, state=STATE, env=env)


def _dirs() -> None:
    for d, mode in [
        (STATE, 0o755),
        (STATE / "etc", 0o755),
        (STATE / "keys", 0o700),
        (STATE / "ssh", 0o700),
        (STATE / "authorized_keys", 0o755),
        (STATE / "pids", 0o700),
        (STATE / "run", 0o755),
    ]:
        mkdir(d, mode, 0, 0)
    mkdir(STATE / "log", 0o755, "slurm", "slurm")
    mkdir(STATE / "spool", 0o755, 0, 0)
    for n in NODES:
        mkdir(STATE / "spool" / f"slurmd-{n}", 0o755, 0, 0)
    mkdir(STATE / "slurmctld", 0o700, "slurm", "slurm")
    os.chown(STATE / "run", pwd.getpwnam("slurm").pw_uid, 0)


def _link_slurm_conf(slurm_conf: Path) -> None:
    """/etc/slurm/slurm.conf -> ours when the machine has none (ssh sessions find it without SLURM_CONF)."""
    conf_link = Path("/etc/slurm/slurm.conf")
    if not conf_link.exists() and not conf_link.is_symlink():
        conf_link.parent.mkdir(parents=True, exist_ok=True)
        LEDGER.add("symlinks", [str(conf_link), str(slurm_conf)])
        conf_link.symlink_to(slurm_conf)
    elif not (conf_link.is_symlink() and os.readlink(conf_link) == str(slurm_conf)):
        log(f"{conf_link} exists: ssh sessions get SLURM_CONF from sshd instead")


def up_2205() -> Cluster:
    t0 = time.monotonic()
    _dirs()
    maria = slurmconf.start_mariadb(STATE, MYSQL_PORT)  # boots while the rest is prepared

    uids = accounts.ensure_users(LEDGER)
    keys = STATE / "keys"
    accounts.user_keys(keys, STATE / "authorized_keys", "dssr-test", service_keys=True, authorize_service_keys=True)

    # sshd on loopback, its own host key
    ssh = STATE / "ssh"
    host_pub, known_hosts = sshd.host_key(ssh, "dssr-test-host", SSH_PORT)
    os.chmod(ssh, 0o755)
    os.chmod(ssh / "ssh_host_ed25519_key", 0o600)
    sshd.ensure_privsep_dir(LEDGER)
    slurm_conf_path = STATE / "etc" / "slurm.conf"
    config = sshd.sshd_config(
        port=SSH_PORT,
        host_key=ssh / "ssh_host_ed25519_key",
        pid_file=ssh / "sshd.pid",
        authorized_keys=STATE / "authorized_keys",
        slurm_conf=slurm_conf_path,
    )
    write(ssh / "sshd_config", config, 0o644)
    sshd_p = spawn(
        "sshd", ["/usr/sbin/sshd", "-D", "-f", str(ssh / "sshd_config"), "-E", str(STATE / "log" / "sshd.log")]
    )

    # munge with a per-run key and its own socket
    m = mkdir(STATE / "munge", 0o755, "munge", "munge")
    write(m / "munge.key", secrets.token_bytes(1024), 0o400, "munge", "munge")
    munge_socket = str(m / "munge.socket.2")
    munged = spawn(
        "munged",
        ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "/usr/sbin/munged", "-F",
         f"--key-file={m}/munge.key", f"--socket={munge_socket}", f"--pid-file={m}/munged.pid",
         f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed"],
    )  # fmt: skip

    # JWT: HS256 key for Slurm tokens + the test IdP's public key
    hs256 = secrets.token_bytes(48)
    jwt_key = write(STATE / "etc" / "jwt_hs256.key", hs256, 0o600, "slurm", "slurm")
    idp = accounts.make_idp(keys)
    jwks = write(STATE / "etc" / "jwks.json", json.dumps(idp.jwks, indent=1), 0o644)

    network.netns_setup(NODES, BRIDGE, BRIDGE_IP)
    scratch_dir, scratch_acl, acl_note = scratch.make_scratch(DATA, SCRATCH, SCRATCH_ACL)
    installed = scratch.install_standin(STATE / "standin")
    if installed is not None:
        scratch.link_standin(Path("/"), str(installed), LEDGER)

    paths = _paths()
    write(slurm_conf_path, _slurm_conf(scale=False), 0o644)
    write(STATE / "etc" / "gres.conf", slurmconf.fake_gpus(STATE / "dev", NODE_GPUS), 0o644)  # beside slurm.conf
    _link_slurm_conf(slurm_conf_path)
    db_pass = secrets.token_hex(16)
    dbd_conf = slurmconf.slurmdbd_conf(
        ports=PORTS_2205, paths=paths, munge_socket=munge_socket, jwt_key=str(jwt_key), jwks=str(jwks),
        db="slurm_acct_db", password=db_pass, dbd_ip=BRIDGE_IP, mysql_port=MYSQL_PORT,
    )  # fmt: skip
    write(STATE / "etc" / "slurmdbd.conf", dbd_conf, 0o600, "slurm", "slurm")
    write(STATE / "etc" / "db_password", db_pass, 0o600)

    env = _env()
    wait_for("munged", lambda: Path(munge_socket).exists(), 15, m / "munged.log", [munged])
    wait_for(
        "mariadb",
        lambda: Path(STATE / "mysqld" / "mysqld.sock").exists() and port_open("127.0.0.1", MYSQL_PORT),
        60,
        STATE / "log" / "mariadb.log",
        [maria],
    )
    slurmconf.mysql(
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_pass}';"
        f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        f"GRANT ALL ON slurm_acct_db_2411.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;",
        STATE,
    )

    dbd = spawn("slurmdbd", ["/usr/sbin/slurmdbd", "-D"], env=env)
    wait_for("slurmdbd", lambda: port_open(BRIDGE_IP, PORTS_2205["dbd"]), 60, STATE / "log" / "slurmdbd.log", [dbd])
    slurmconf.sacctmgr_setup(lambda argv: sh(argv, env=env), "dssr")

    ctld = spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", str(slurm_conf_path)], env=env)
    wait_for("slurmctld", lambda: _ping(env).count("UP") >= 1, 30, STATE / "log" / "slurmctld.log", [ctld])
    slurmds = [
        spawn(
            f"slurmd-{n}", network.in_node(n, ["/usr/sbin/slurmd", "-D", "-N", n, "-f", str(slurm_conf_path)]), env=env
        )
        for n in NODES
    ]
    restd = spawn(
        "slurmrestd",
        ["/usr/sbin/slurmrestd", "-f", str(slurm_conf_path), "-a", "rest_auth/jwt", "-u", "nobody",
         f"127.0.0.1:{PORTS_2205['restd']}"],
        env={**env, "SLURM_JWT": "daemon"},
    )  # fmt: skip

    wait_for("nodes idle", lambda: _nodes_are(env, ["idle"]), 45, STATE / "log" / "slurmctld.log", [ctld, *slurmds])
    wait_for(
        "slurmrestd", lambda: port_open("127.0.0.1", PORTS_2205["restd"]), 20, STATE / "log" / "slurmrestd.out", [restd]
    )
    wait_for("sshd", lambda: port_open("127.0.0.1", SSH_PORT), 20, STATE / "log" / "sshd.log", [sshd_p])
    version = sh(["sinfo", "-V"], env=env).stdout.split()[-1]
    cluster = Cluster(
        name=KEY, cluster_name="dssr", host="127.0.0.1", ssh_port=SSH_PORT,
        ssh_host_fingerprint=accounts.fingerprint(host_pub), known_hosts=known_hosts, service_user=SERVICE_USER,
        users=accounts.cluster_users(keys, uids), jarvice_key=keys / f"{SERVICE_USER}_ed25519",
        jarvice_rsa_key=keys / f"{SERVICE_USER}_rsa", jarvice_ecdsa_key=keys / f"{SERVICE_USER}_ecdsa",
        nodes=list(NODES), partition="debug", scratch=scratch_dir, scratch_acl=scratch_acl,
        scratch_acl_note=acl_note, restd_url=f"http://127.0.0.1:{PORTS_2205['restd']}",
        rest_versions=["v0.0.36", "v0.0.37", "v0.0.38"], slurm_version=version, jwt_hs256_key=hs256,
        idp=idp, slurm_conf=slurm_conf_path, chroot=None, state_dir=STATE, log_dir=STATE / "log",
        min_job_age=MIN_JOB_AGE, ports={**PORTS_2205, "ssh": SSH_PORT, "mysql": MYSQL_PORT},
        gpus_per_node=NODE_GPUS,
    )  # fmt: skip
    state.update(STATE_FILE, {KEY: cluster.to_json()})
    log(f"Slurm {version} cluster up in {time.monotonic() - t0:.1f}s")
    return cluster


def _env() -> dict[str, str]:
    return {"PATH": SYS_PATH, "LANG": "C.UTF-8", "SLURM_CONF": str(STATE / "etc" / "slurm.conf")}


def _ping(env: dict[str, str]) -> str:
    return sh(["scontrol", "ping"], env=env, check=False, quiet_fail=True).stdout


def _nodes_are(env: dict[str, str], fields: list[str]) -> bool:
    """Whether every node's sinfo line reads ``fields`` (state, then CPUs when asked)."""
    fmt = "%N %T" if len(fields) == 1 else "%N %T %c"
    cp = sh(["sinfo", "-h", "-N", "-o", fmt], env=env, check=False, quiet_fail=True)
    st = {ln.split()[0]: ln.split()[1:] for ln in cp.stdout.splitlines() if ln.strip()}
    return all(st.get(n) == fields for n in NODES)


def _paths() -> dict[str, Any]:
    return {"ctld_state": STATE / "slurmctld", "spool": STATE / "spool", "run": STATE / "run", "log": STATE / "log"}


def _slurm_conf(scale: bool) -> str:
    return slurmconf.slurm_conf(
        cluster="dssr", ports=PORTS_2205, paths=_paths(), nodes=NODES,
        munge_socket=str(STATE / "munge" / "munge.socket.2"), jwt_key=str(STATE / "etc" / "jwt_hs256.key"),
        jwks=str(STATE / "etc" / "jwks.json"), ctld_ip=BRIDGE_IP, gpus=NODE_GPUS, scale=scale,
    )  # fmt: skip


def scaled_2205() -> bool:
    """Whether the 22.05 cluster runs in the scale configuration (see slurmconf.SCALE_CPUS)."""
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
    env = _env()
    queue = sh(["squeue", "-h", "-o", "%i"], env=env).stdout.split()
    if queue:
        raise HarnessError(f"cannot change the 22.05 configuration with jobs in the queue: {' '.join(queue[:10])}")
    names = [*(f"slurmd-{n}" for n in NODES), "slurmctld"]
    records = {name: daemons.pidfile(name, STATE) for name in names}
    daemons.stop([int(r["pid"]) for r in records.values()], timeout)
    write(STATE / "etc" / "slurm.conf", _slurm_conf(scale=scale), 0o644)
    ctld = spawn("slurmctld", records["slurmctld"]["argv"], env=env)
    wait_for("slurmctld", lambda: "UP" in _ping(env), timeout, STATE / "log" / "slurmctld.log", [ctld])
    slurmds = [spawn(f"slurmd-{n}", records[f"slurmd-{n}"]["argv"], env=env) for n in NODES]
    cpus = str(SCALE_CPUS if scale else NODE_CPUS)
    wait_for(
        f"nodes idle with {cpus} CPUs",
        lambda: _nodes_are(env, ["idle", cpus]),
        timeout,
        STATE / "log" / "slurmctld.log",
        [ctld, *slurmds],
    )
    log(f"22.05 cluster in the {'scale' if scale else 'normal'} configuration ({cpus} CPUs per node)")
    return True
