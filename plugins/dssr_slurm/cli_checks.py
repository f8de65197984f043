"""``dssr doctor``'s checks of the SSH interface (``JARVICE_SLURM_INTERFACE=cli``), run by
:meth:`dssr_slurm.cli.CliBackend.diagnose`: the user-id mapping file loads, the service user
coordinates the mapped users' accounts, and each mapped user's key logs in and writes a scratch
folder the service user can read and clean.
"""

from __future__ import annotations

import posixpath
import secrets
from typing import Iterator

from dssr_core import Check, ClusterError, ConfigError, DssrError, command, failed, passed
from dssr_core.batch import Login, ServiceShell, SSHPool, UserMappingFile, script_command

from .settings import SlurmSettings

#: the variable naming the user-id mapping file (named by every fault of the file)
MAPPING_VARIABLE = "JARVICE_USERS_ID_MAPPING_FILE"


def diagnose(shell: ServiceShell, pool: SSHPool, cfg: SlurmSettings, mapping: UserMappingFile) -> Iterator[Check]:
    """The checks, in order (never raises)."""
    users = list(logins(mapping))
    yield from _coordinators(shell, cfg, sorted({login.user for _, login in users}))
    for email, login in users:
        yield from _user_checks(shell, pool, cfg, email, login)


def logins(mapping: UserMappingFile) -> Iterator[tuple[str, Login]]:
    """Each mapped cluster user once, with the first e-mail (in order) mapped to it."""
    try:
        loaded = mapping.load()
    except ConfigError:
        return
    seen: set[str] = set()
    for email, login in sorted(loaded.logins.items()):
        if login.user not in seen:
            seen.add(login.user)
            yield email, login


def mapping_checks(cfg: SlurmSettings, mapping_file: UserMappingFile) -> Iterator[Check]:
    """Local: the file loads and maps someone (a fault that stops start-up), then one failed,
    non-blocking check per bad entry (the others' jobs still run)."""
    what = f"the user-id mapping file {cfg.mapping_file} loads"
    try:
        mapping = mapping_file.load()
    except ConfigError as exc:
        why = str(exc)
        yield failed(what, why if MAPPING_VARIABLE in why else f"{MAPPING_VARIABLE}: {why}")
        return
    for problem in mapping.problems:
        yield failed("an entry of the user-id mapping file", problem, blocks=False)
    if not mapping.logins:
        yield failed(
            what,
            f"{MAPPING_VARIABLE}={cfg.mapping_file!r} maps nobody: add users_id_mapping entries "
            "(mail, mapped_user, ssh_private_key_b64)",
        )
        return
    yield passed(what, f"{len(mapping.logins)} user(s)")


def _coordinators(shell: ServiceShell, cfg: SlurmSettings, users: list[str]) -> Iterator[Check]:
    if not users:
        return
    service = cfg.service_user
    try:
        me = shell.run(
            command(
                "sacctmgr", "-n", "-P", "show", "user", service, "withcoord", "format=User,AdminLevel,Coordinators"
            ),
            kind="doctor",
            timeout=60,
        )
        assoc = shell.run(
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


def user_logins(pool: SSHPool, cfg: SlurmSettings, mapping: UserMappingFile) -> Iterator[Check]:
    """Each mapped user's key logs in (run when the service user cannot: its faults are their own)."""
    for email, login in logins(mapping):
        what = f"{email}'s key logs in as {login.user!r}"
        try:
            pool.run(login, "true", kind="doctor", timeout=60)
        except ClusterError as exc:
            yield failed(what, f"{exc} Fix: {_key_fix(cfg, email, login)}")
            continue
        yield passed(what)


def _key_fix(cfg: SlurmSettings, email: str, login: Login) -> str:
    return (
        f"the ssh_private_key_b64 of {email} in {cfg.mapping_file} must be a key "
        f"in ~{login.user}/.ssh/authorized_keys on the login node."
    )


def _user_checks(shell: ServiceShell, pool: SSHPool, cfg: SlurmSettings, email: str, login: Login) -> Iterator[Check]:
    folder = cfg.user_scratch(login.user)
    marker = f".dssr-doctor-{secrets.token_hex(6)}"
    probe = posixpath.join(folder, marker)
    script = (
        f"[ -d {command(folder)} ] || exit 3\n"
        f"( umask 022; printf 'dssr doctor\\n' > {command(probe)} ) 2>/dev/null || exit 4\n"
    )
    what = f"{email}'s key logs in as {login.user!r}"
    remote, data = script_command(script)
    try:
        result = pool.run(login, remote, stdin=data, kind="doctor", timeout=60)
    except ClusterError as exc:
        yield failed(what, f"{exc} Fix: {_key_fix(cfg, email, login)}")
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
            f"(JARVICE_BAREMETAL_SCRATCH_DIR={cfg.scratch})",
        )
        return
    yield passed(what)
    service = cfg.service_user
    what = f"the service user {service!r} can read and remove files in {folder}"
    try:
        read = shell.run(command("cat", "--", probe), kind="doctor")
        removed = shell.run(command("rm", "-f", "--", probe), kind="doctor")
    except ClusterError as exc:
        yield failed(what, str(exc))
        return
    finally:
        try:
            pool.run(login, command("rm", "-f", "--", probe), kind="doctor")
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
