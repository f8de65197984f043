"""``dssr doctor`` for the Slurm connector: every check of a site's set-up, each a verdict with a fix.

In order: the SSH host key, the service user's key, ``squeue``/``sacct``/
``scontrol``, coordinators of the mapped users' accounts, each mapped user's
key and scratch folder, slurmrestd (``http`` interface), and the executor's
probes on the compute nodes.  A failure that makes the next checks
meaningless (no SSH) ends the list there.
"""

from __future__ import annotations

import posixpath
import secrets
from typing import TYPE_CHECKING, Iterator

from dssr_core import Check, ClusterError, ConfigError, DssrError, Executor, NodeProbe, command
from dssr_core import failed, passed
from dssr_core import Login

if TYPE_CHECKING:
    from .connector import SlurmConnector

#: separators of the node probes' output (record, field)
_RS, _FS = "\x1e", "\x1f"
#: how long a node probe may wait for busy nodes (seconds)
PROBE_WAIT = 120


def diagnose(conn: "SlurmConnector", executor: Executor) -> Iterator[Check]:
    cfg = conn.cfg
    where = f"{cfg.host}:{cfg.port}"
    what = f"SSH reaches {where} with the right host key"
    try:
        seen = conn.pool.check_host()
    except ClusterError as exc:
        fix = (
            "check JARVICE_SLURM_CLUSTER_ADDR and JARVICE_SLURM_CLUSTER_PORT, and that this host may reach it"
            if "reach" in str(exc)
            else f"if the login node's key really is {'this one' if 'SHA256' in str(exc) else 'new'}, put it in "
            f"JARVICE_SLURM_SSH_KNOWN_HOSTS (ssh-keyscan -p {cfg.port} {cfg.host}) or JARVICE_SLURM_SSH_HOST_KEY"
        )
        yield failed(what, f"{exc} Fix: {fix}.")
        return
    yield passed(what, f"{seen} ({conn.pool.policy.describe()})")

    what = f"the service user {cfg.service_user!r} logs in with JARVICE_SLURM_SSH_PKEY"
    try:
        whoami = conn.shell.run(command("id", "-un"), kind="doctor").stdout.strip()
    except ClusterError as exc:
        yield failed(
            what,
            f"{exc} Fix: add the public half of the key to ~{cfg.service_user}/.ssh/authorized_keys "
            "on the login node, or set JARVICE_SLURM_SSH_USER to the key's user.",
        )
        return
    yield passed(what, f"logged in as {whoami}")

    yield from _slurm_commands(conn)
    logins = list(_logins(conn)) if cfg.interface == "cli" else []
    if cfg.interface == "cli":
        yield from _mapping(conn)
        yield from _coordinators(conn, sorted({login.user for _, login in logins}))
        for email, login in logins:
            yield from _user_checks(conn, email, login)
    else:
        from .rest import RestBackend

        assert isinstance(conn.backend, RestBackend)
        yield from conn.backend.diagnose()
    for probe in executor.node_probes():
        yield from _on_nodes(conn, probe, logins[0][1] if logins else None)


def _slurm_commands(conn: "SlurmConnector") -> Iterator[Check]:
    checks = (
        (
            "squeue answers (slurmctld)",
            command("squeue", "-h", "-o", "%i", "-t", "all"),
            "slurmctld must run and the login node's Slurm client must reach it (slurm.conf, munge)",
        ),
        (
            "sacct answers (accounting, slurmdbd)",
            command("sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now"),
            "without accounting, finished jobs cannot be reported: start slurmdbd and set "
            "AccountingStorageType=accounting_storage/slurmdbd in slurm.conf",
        ),
        ("scontrol answers", command("scontrol", "ping"), "scontrol must reach slurmctld from the login node"),
    )
    for what, cmd, fix in checks:
        try:
            result = conn.shell.run(cmd, kind="doctor", timeout=60)
        except ClusterError as exc:
            yield failed(what, str(exc))
            continue
        text = (result.stderr or result.stdout).strip()
        if result.rc != 0 or (cmd.startswith("scontrol") and "UP" not in result.stdout):
            first = next((line.strip() for line in text.splitlines() if line.strip()), f"exit status {result.rc}")
            yield failed(what, f"{first[:300]} Fix: {fix}.")
        else:
            yield passed(what)


def _logins(conn: "SlurmConnector") -> Iterator[tuple[str, Login]]:
    try:
        mapping = conn.mapping.load()
    except ConfigError:
        return
    seen: set[str] = set()
    for email, login in sorted(mapping.logins.items()):
        if login.user not in seen:
            seen.add(login.user)
            yield email, login


def _mapping(conn: "SlurmConnector") -> Iterator[Check]:
    what = f"the user-id mapping file {conn.cfg.mapping_file} loads"
    try:
        mapping = conn.mapping.load()
    except ConfigError as exc:
        yield failed(what, str(exc))
        return
    if not mapping.logins:
        yield failed(what, "it maps nobody: add users_id_mapping entries (mail, mapped_user, ssh_private_key_b64)")
        return
    yield passed(what, f"{len(mapping.logins)} user(s)")
    for problem in mapping.problems:
        yield failed("an entry of the user-id mapping file", problem)


def _coordinators(conn: "SlurmConnector", users: list[str]) -> Iterator[Check]:
    if not users:
        return
    service = conn.cfg.service_user
    try:
        me = conn.shell.run(
            command(
                "sacctmgr", "-n", "-P", "show", "user", service, "withcoord", "format=User,AdminLevel,Coordinators"
            ),
            kind="doctor",
            timeout=60,
        )
        assoc = conn.shell.run(
            command(
                "sacctmgr", "-n", "-P", "show", "assoc", "where", "users=" + ",".join(users), "format=User,Account"
            ),
            kind="doctor",
            timeout=60,
        )
    except ClusterError as exc:
        yield failed(f"{service!r} coordinates the mapped users' accounts", str(exc))
        return
    if me.rc != 0 or assoc.rc != 0:
        why = (me.stderr or assoc.stderr).strip().splitlines()
        yield failed(
            f"{service!r} coordinates the mapped users' accounts", f"sacctmgr failed: {why[0] if why else 'no message'}"
        )
        return
    fields = (me.stdout.strip().splitlines() or [""])[0].split("|")
    if not fields[0]:
        yield failed(
            f"{service!r} is a Slurm user",
            f"run: sacctmgr add user {service} account=<an account>, then "
            f"sacctmgr add coordinator account=<each account> names={service}",
        )
        return
    admin = fields[1] if len(fields) > 1 else ""
    coordinated = {a for a in (fields[2] if len(fields) > 2 else "").split(",") if a}
    accounts: dict[str, list[str]] = {}
    for line in assoc.stdout.splitlines():
        user, _, account = line.partition("|")
        if user and account:
            accounts.setdefault(account, []).append(user)
    for user in users:
        if not any(user in members for members in accounts.values()):
            yield failed(
                f"the mapped user {user!r} has a Slurm account",
                f"it has no association, so it cannot submit: sacctmgr add user {user} account=<account>",
            )
    if admin in ("Operator", "Administrator"):
        yield passed(f"{service!r} sees and controls every account", f"Slurm AdminLevel {admin}")
        return
    for account, members in sorted(accounts.items()):
        what = f"{service!r} coordinates account {account!r}"
        if account in coordinated:
            yield passed(what, f"used by {', '.join(sorted(members))}")
        else:
            yield failed(
                what,
                f"{', '.join(sorted(members))} submit(s) under it, and with PrivateData=jobs "
                f"{service} cannot see, cancel or release those jobs. Fix: sacctmgr add coordinator "
                f"account={account} names={service}",
            )


def _user_checks(conn: "SlurmConnector", email: str, login: Login) -> Iterator[Check]:
    folder = conn.cfg.user_scratch(login.user)
    marker = f".dssr-doctor-{secrets.token_hex(6)}"
    probe = posixpath.join(folder, marker)
    script = (
        f"[ -d {command(folder)} ] || exit 3\n"
        f"( umask 022; printf 'dssr doctor\\n' > {command(probe)} ) 2>/dev/null || exit 4\n"
    )
    what = f"{email}'s key logs in as {login.user!r}"
    try:
        result = conn.pool.run(login, "bash -s", stdin=script.encode(), kind="doctor", timeout=60)
    except ClusterError as exc:
        yield failed(
            what,
            f"{exc} Fix: the ssh_private_key_b64 of {email} in {conn.cfg.mapping_file} must be a key "
            f"in ~{login.user}/.ssh/authorized_keys on the login node.",
        )
        return
    yield passed(what)
    what = f"{login.user!r} can write its scratch folder {folder}"
    if result.rc == 3:
        yield failed(
            what,
            f"the folder does not exist. Fix: mkdir -p {folder} && chown {login.user} {folder} "
            "(mode 2770 with the service user in the user's group, or an ACL: docs/slurm.md)",
        )
        return
    if result.rc != 0:
        yield failed(
            what,
            f"writing a file there failed. Fix: chown {login.user} {folder} and chmod u+rwx "
            f"(JARVICE_BAREMETAL_SCRATCH_DIR={conn.cfg.scratch})",
        )
        return
    yield passed(what)
    service = conn.cfg.service_user
    what = f"the service user {service!r} can read and remove files in {folder}"
    try:
        read = conn.shell.run(command("cat", "--", probe), kind="doctor")
        removed = conn.shell.run(command("rm", "-f", "--", probe), kind="doctor")
    except ClusterError as exc:
        yield failed(what, str(exc))
        return
    finally:
        try:
            conn.pool.run(login, command("rm", "-f", "--", probe), kind="doctor")
        except DssrError:
            pass
    if read.rc != 0 or "dssr doctor" not in read.stdout:
        yield failed(
            what,
            f"{service} cannot read what {login.user} writes there, so job output cannot be "
            f"returned. Fix: add {service} to {login.user}'s group and chmod 2770 {folder}, or "
            f"setfacl -m u:{service}:rwx -d -m u:{service}:rwx {folder} (docs/slurm.md)",
        )
    elif removed.rc != 0:
        yield failed(
            what,
            f"{service} can read but not remove files there, so finished jobs are never cleaned "
            f"up. Fix: give {service} write access to {folder} (group 2770 or an ACL)",
        )
    else:
        yield passed(what)


def _on_nodes(conn: "SlurmConnector", probe: NodeProbe, login: Login | None) -> Iterator[Check]:
    """Run ``probe`` once on every responding node with one ``srun`` (as a mapped user, who may run jobs)."""
    inner = (
        f"out=$(bash -c {command(probe.script)} 2>&1); rc=$?; "
        f'printf \'{_RS}%s{_FS}%s{_FS}%s\' "$SLURMD_NODENAME" "$rc" "$out"'
    )
    script = (
        "list=$(sinfo -h -N -r -t idle,mix,alloc,comp -o %N | sort -u)\n"
        '[ -n "$list" ] || { echo "no node responds (sinfo -N -r)" >&2; exit 3; }\n'
        'n=$(printf "%s\\n" "$list" | wc -l); nodes=$(printf "%s\\n" "$list" | paste -sd, -)\n'
        f'srun -N "$n" -w "$nodes" --ntasks-per-node=1 --time=2 --immediate={PROBE_WAIT} '
        f"--job-name=dssr-doctor-probe --quiet bash -c {command(inner)}\n"
    )
    what = f"{probe.what}: a probe runs on the nodes"
    try:
        if login is not None:
            result = conn.pool.run(login, "bash -s", stdin=script.encode(), kind="doctor", timeout=PROBE_WAIT + 60)
        else:
            result = conn.shell.run("bash -s", stdin=script.encode(), kind="doctor", timeout=PROBE_WAIT + 60)
    except ClusterError as exc:
        yield failed(what, str(exc))
        return
    records = [r.split(_FS, 2) for r in result.stdout.split(_RS)[1:]]
    if not records:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        yield failed(
            what,
            f"srun failed: {lines[-1].strip() if lines else f'exit status {result.rc}'}. Fix: the "
            f"user {login.user if login else conn.cfg.service_user} must be able to run jobs "
            "(an association, a partition up); busy nodes make it wait at most "
            f"{PROBE_WAIT} s",
        )
        return
    for fields in sorted(records):
        node, rc, output = (fields + ["", ""])[:3]
        yield probe.judge(node, int(rc) if rc.strip().lstrip("-").isdigit() else 1, output)
