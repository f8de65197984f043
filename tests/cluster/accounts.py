"""The seed's users (jarvice, kirby, mario, dovahkiin), their ssh keys, and the test OpenID provider.

On the host (Slurm 22.05/24.11, Grid Engine) a user is created only when missing, recorded in the
cluster's ledger, and removed by that cluster's ``down``; the 24.11 chroot gets copies of the host's
lines; the 26.05 root has accounts of its own (uids from 26000) that never exist on the host.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import pwd
import shutil
from pathlib import Path
from typing import Any

from tests.cluster import daemons
from tests.cluster.base import HarnessError, group_exists, mkdir, sh, user_exists, write
from tests.cluster.ledger import Ledger
from tests.cluster.model import SERVICE_USER as SERVICE_USER  # every harness module takes it from here
from tests.cluster.model import ClusterUser, TestIdP

USERS = {"kirby": "nintendo", "mario": "nintendo", "dovahkiin": "pc"}  # user -> Slurm account
ACCOUNTS = ("nintendo", "pc")
IDP_ISSUER = "https://idp.test/realms/jarvice"
IDP_KID = "dssr-test-idp"
ACCOUNT_FILES = ("passwd", "shadow", "group", "gshadow")


# --------------------------------------------------------------------------- on the host
def ensure_users(ledger: Ledger) -> dict[str, int]:
    """The seed's users, created when missing (recorded first); jarvice in each user's group. Returns uids."""
    uids = {}
    for name in [SERVICE_USER, *USERS]:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            ledger.add("users", name)
            sh(["useradd", "-m", "-U", "-s", "/bin/bash", "-c", f"dssr test user {name}", name])
            pw = pwd.getpwnam(name)
        # sshd (UsePAM no) refuses key logins for a locked ("!") password field.
        shadow = sh(["getent", "shadow", name]).stdout.split(":")
        if len(shadow) > 1 and (shadow[1].startswith("!") or shadow[1] == ""):
            if name not in ledger.read().get("users", []):
                ledger.add("passwords", [name, shadow[1]])
            sh(["usermod", "-p", "*", name])
        uids[name] = pw.pw_uid
    for name in USERS:
        g = grp.getgrgid(pwd.getpwnam(name).pw_gid)
        if SERVICE_USER not in g.gr_mem:
            ledger.add("group_members", [SERVICE_USER, g.gr_name])
            sh(["gpasswd", "-a", SERVICE_USER, g.gr_name])
    return uids


def created_uids(led: dict[str, Any]) -> set[int]:
    """The uids of the users ``led`` says the harness created (that still exist)."""
    return {pwd.getpwnam(u).pw_uid for u in led.get("users", []) if user_exists(u)}


def undo(led: dict[str, Any]) -> None:
    """Undo what ``led`` records of accounts: group memberships, passwords, users (their processes killed,
    their homes and groups removed), then the dirs made for them (/run/sshd)."""
    created = led.get("users", [])
    mine = [u for u in created if user_exists(u)]
    for user, group in led.get("group_members", []):
        if user not in created and group not in created and group_exists(group):
            sh(["gpasswd", "-d", user, group], check=False)
    for user, field_ in led.get("passwords", []):
        if user not in created and user_exists(user):
            sh(["usermod", "-p", field_, user], check=False)
    for u in mine:
        uid = pwd.getpwnam(u).pw_uid
        daemons.kill([p for p in daemons.all_pids() if daemons.uid_of(p) == uid])
        sh(["userdel", "-r", "-f", u], check=False)
        if group_exists(u):
            sh(["groupdel", u], check=False, quiet_fail=True)
    for d in led.get("dirs", []):
        try:
            Path(d).rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------- in a root
def copy_into_root(root: Path) -> None:
    """The host's lines of the seed's users and groups, copied into ``root``'s account files."""
    names = {SERVICE_USER, *USERS}
    for fname in ACCOUNT_FILES:
        p = root / "etc" / fname
        lines = [ln for ln in p.read_text().splitlines() if ln.split(":")[0] not in names]
        for n in sorted(names):
            cp = sh(["getent", fname, n], check=False, quiet_fail=True)
            if cp.returncode == 0:
                lines.append(cp.stdout.strip())
        _rewrite(p, lines)


def own_in_root(root: Path, uid_base: int) -> dict[str, int]:
    """The seed's users in ``root``'s own account files (uids from ``uid_base``), homes in the root."""
    names = [SERVICE_USER, *USERS]
    uids = {n: uid_base + i for i, n in enumerate(names)}
    members = {n: "" if n == SERVICE_USER else SERVICE_USER for n in names}
    lines = {
        "passwd": [f"{n}:x:{u}:{u}:dssr test user {n}:/home/{n}:/bin/bash" for n, u in uids.items()],
        # "*": no password, yet not locked ("!" makes sshd refuse key logins)
        "shadow": [f"{n}:*:20000:0:99999:7:::" for n in names],
        "group": [f"{n}:x:{u}:{members[n]}" for n, u in uids.items()],
        "gshadow": [f"{n}:!::{members[n]}" for n in names],
    }
    drop_from_root(root, homes=True)
    for fname, new in lines.items():
        p = root / "etc" / fname
        _rewrite(p, [*p.read_text().rstrip("\n").splitlines(), *new])
    for n, u in uids.items():
        home = root / "home" / n
        shutil.rmtree(home, ignore_errors=True)
        mkdir(home, 0o750, u, u)
        write(home / ".bashrc", "export SLURM_CONF=/etc/slurm/slurm.conf\n", 0o644, u, u)
    return uids


def drop_from_root(root: Path, homes: bool = False) -> None:
    """The seed's users and groups out of ``root``'s account files (and their homes in it)."""
    names = {SERVICE_USER, *USERS}
    for fname in ACCOUNT_FILES:
        p = root / "etc" / fname
        if p.exists():
            _rewrite(p, [ln for ln in p.read_text().splitlines() if ln.split(":")[0] not in names])
    if homes:
        for n in names:
            shutil.rmtree(root / "home" / n, ignore_errors=True)


def root_id(name: str, file: str, root: Path) -> int:
    """The uid (``file`` passwd) or gid (group) of ``name`` in ``root``."""
    for ln in (root / "etc" / file).read_text().splitlines():
        f = ln.split(":")
        if f[0] == name:
            return int(f[2])
    raise HarnessError(f"no {name} in {root}/etc/{file}")


def _rewrite(p: Path, lines: list[str]) -> None:
    st = p.stat()
    write(p, "\n".join(lines) + "\n", st.st_mode & 0o7777, st.st_uid, st.st_gid)


# --------------------------------------------------------------------------- keys, users, IdP
def keygen(path: Path, kind: str, comment: str, bits: str | None = None) -> Path:
    path.unlink(missing_ok=True)
    Path(str(path) + ".pub").unlink(missing_ok=True)
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if bits:
        argv[2:2] = ["-b", bits]
    sh(argv)
    return path


def user_keys(keys: Path, authorized: Path, tag: str, service_keys: bool, authorize_service_keys: bool) -> None:
    """An ed25519 key for each user (and jarvice) in ``keys``, authorized in ``authorized/<user>`` (root-owned);
    ``service_keys``: also an RSA and an ECDSA key for jarvice, authorized beside its ed25519 one when asked."""
    for u in [SERVICE_USER, *USERS]:
        keygen(keys / f"{u}_ed25519", "ed25519", f"{u}@{tag}")
    if service_keys:
        keygen(keys / f"{SERVICE_USER}_rsa", "rsa", f"{SERVICE_USER}-rsa@{tag}", "3072")
        keygen(keys / f"{SERVICE_USER}_ecdsa", "ecdsa", f"{SERVICE_USER}-ecdsa@{tag}", "256")
    for u in [SERVICE_USER, *USERS]:
        kinds = ["ed25519", "rsa", "ecdsa"] if u == SERVICE_USER and authorize_service_keys else ["ed25519"]
        write(authorized / u, "".join((keys / f"{u}_{k}.pub").read_text() for k in kinds), 0o644, 0, 0)


def cluster_users(keys: Path, uids: dict[str, int], with_accounts: bool = True) -> dict[str, ClusterUser]:
    """The seed's users as the tests see them (not jarvice: that is the service user)."""
    return {
        u: ClusterUser(
            name=u,
            email=f"{u}@example.com",
            account=a if with_accounts else "",
            key_path=keys / f"{u}_ed25519",
            uid=uids[u],
        )
        for u, a in USERS.items()
    }


def fingerprint(pubkey_line: str) -> str:
    blob = base64.b64decode(pubkey_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def make_idp(keydir: Path) -> TestIdP:
    """A fresh RSA key pair for the stand-in OpenID provider (the private half in ``keydir``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    nums = key.public_key().public_numbers()

    def b64u(i: int) -> str:
        return base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).decode().rstrip("=")

    jwks = {
        "keys": [{"kty": "RSA", "kid": IDP_KID, "alg": "RS256", "use": "sig", "n": b64u(nums.n), "e": b64u(nums.e)}]
    }
    write(keydir / "idp_private.pem", priv, 0o600)
    write(keydir / "idp_public.pem", pub, 0o644)
    return TestIdP(issuer=IDP_ISSUER, kid=IDP_KID, private_key_pem=priv, public_key_pem=pub, jwks=jwks)
