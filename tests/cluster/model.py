"""The clusters as the tests see them: ``Cluster`` (Slurm), its users and the stand-in OpenID provider.

A ``Cluster`` is frozen and round-trips through JSON (the state file a reusing session reads).
Grid Engine's ``GECluster`` is in tests/cluster/gridengine.py.
"""

from __future__ import annotations

import base64
import dataclasses
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.base import SYS_PATH

SERVICE_USER = "jarvice"  # the service account of every cluster (JARVICE's SSH user)


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

    def mint(
        self,
        email: str | None = None,
        user: str | None = None,
        audience: str = "jarvice",
        lifespan: int = 600,
        **claims: Any,
    ) -> str:
        """RS256 token like a Keycloak access token. ``claims`` override; a None value drops a claim."""
        import jwt

        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "azp": audience,
            "aud": "account",
            "typ": "Bearer",
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.issuer}/{email or user or 'anonymous'}")),
            "iat": now,
            "exp": now + int(lifespan),
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
    name: str  # "slurm-22.05" | "slurm-24.11"
    cluster_name: str  # Slurm ClusterName
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
    scratch_acl_note: str  # why scratch_acl is None, or "" when it exists
    restd_url: str
    rest_versions: list[str]
    slurm_version: str
    jwt_hs256_key: bytes
    idp: TestIdP
    slurm_conf: Path  # as seen by commands of run()
    chroot: Path | None  # root the commands run in (24.11), None on the host
    state_dir: Path
    log_dir: Path
    min_job_age: int
    ports: dict[str, int]
    gpus_per_node: int = 0  # gres/gpu count of every node (device files stand in for the GPUs)
    # 26.05 (tests/cluster/slurm2605.py) only:
    enter: Path | None = None  # script running argv inside the cluster's root (pivot_root), instead of chroot
    apptainer_version: str = ""  # the real Apptainer on the nodes; "" where the nodes have the stand-in
    registry: str = ""  # host:port of the plain-HTTP OCI registry on the test network (public images)
    private_registry: str = ""  # host:port of the one that wants a login (htpasswd)
    registry_credentials: tuple[str, ...] = ()  # (user, password) for private_registry
    images: dict[str, str] = dataclasses.field(
        default_factory=dict
    )  # "public"/"private"/"nae" -> registry/repository (public: tags 1-4, private: 1, nae: 1-2)

    def token(self, user: str, lifespan: int = 600) -> str:
        """HS256 Slurm token for ``user``, the same as ``scontrol token`` makes."""
        import jwt

        now = int(time.time())
        return jwt.encode({"exp": now + int(lifespan), "iat": now, "sun": user}, self.jwt_hs256_key, algorithm="HS256")

    def env(self, user: str) -> dict[str, str]:
        home = "/root" if user == "root" else f"/home/{user}"
        return {
            "PATH": SYS_PATH,
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "SLURM_CONF": str(self.slurm_conf),
        }

    def run(
        self,
        cmd: list[str] | str,
        user: str = SERVICE_USER,
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
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
        cp = subprocess.run(
            argv, env=self.env(user), cwd="/", capture_output=True, text=True, timeout=timeout, input=input
        )
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
        d: dict[str, Any] = {}
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
    def from_json(cls, d: dict[str, Any]) -> Cluster:
        d = dict(d)
        for k in (
            "known_hosts",
            "jarvice_key",
            "jarvice_rsa_key",
            "jarvice_ecdsa_key",
            "scratch",
            "slurm_conf",
            "state_dir",
            "log_dir",
        ):
            d[k] = Path(d[k])
        for k in ("scratch_acl", "chroot", "enter"):
            d[k] = Path(d[k]) if d.get(k) else None
        d["registry_credentials"] = tuple(d.get("registry_credentials", ()))
        d["jwt_hs256_key"] = base64.b64decode(d["jwt_hs256_key"])
        d["idp"] = TestIdP(**d["idp"])
        d["users"] = {k: ClusterUser(**{**u, "key_path": Path(u["key_path"])}) for k, u in d["users"].items()}
        return cls(**d)
