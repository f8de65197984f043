"""Commands on the cluster as the service user (``jarvice``) or as a job's user, over pooled SSH."""

from __future__ import annotations

import paramiko

from typing import Iterator

from dssr_core import Check, ClusterError, ConfigError, failed
from dssr_core import HostKeyPolicy, Login, Result, SSHPool, load_private_key

from .settings import SlurmSettings


class UnusablePolicy(HostKeyPolicy):
    """The host-key policy when the configured one cannot be built (a known_hosts file that cannot
    be read, a malformed fingerprint): it refuses every key, saying why.  The fault is a local check
    of its own (start-up stops on it), so that it hides none of the others (issue 21)."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem

    def knows(self, host: str, port: int) -> bool | None:
        return None

    def describe(self) -> str:
        return "none usable"

    def check(self, host: str, port: int, key: paramiko.PKey) -> None:
        raise ClusterError(f"{self.problem} Refusing to connect.", transient=False)


def build_pool(cfg: SlurmSettings) -> SSHPool:
    """The SSH pool of the cluster's login node, with the configured host-key policy."""
    policy: HostKeyPolicy
    try:
        policy = HostKeyPolicy(
            known_hosts=cfg.known_hosts,
            expected_fingerprint=cfg.host_key,
            record_file=cfg.host_key_record,
            record_setting="JARVICE_SLURM_SSH_HOST_KEY_RECORD",
            known_hosts_setting="JARVICE_SLURM_SSH_KNOWN_HOSTS",
            fingerprint_setting="JARVICE_SLURM_SSH_HOST_KEY",
        )
    except ConfigError as exc:
        policy = UnusablePolicy(str(exc))
    return SSHPool(cfg.host, cfg.port, policy, command_timeout=cfg.command_timeout, keepalive=cfg.keepalive)


def host_key_checks(pool: SSHPool, cfg: SlurmSettings) -> Iterator[Check]:
    """Local: the configured host-key pin can be used, and a known_hosts file holds the login node's key."""
    if isinstance(pool.policy, UnusablePolicy):
        yield failed("the login node's host key is pinned", pool.policy.problem)
    elif pool.policy.knows(cfg.host, cfg.port) is False:  # every connection would be refused
        yield failed(
            f"the known_hosts file holds the login node's key ({cfg.host}:{cfg.port})",
            f"JARVICE_SLURM_SSH_KNOWN_HOSTS={cfg.known_hosts!r} has no key of {cfg.host}:{cfg.port}: add it "
            f"(ssh-keyscan -p {cfg.port} {cfg.host}, checked with the cluster's administrators).",
        )


class ServiceShell:
    """Runs commands as the service user; what the slurmrestd backend is given as ``ssh``.

    ``run(command, timeout=None, idempotent=True) -> Result`` (``.rc``, ``.stdout``,
    ``.stderr``) and ``open_tunnel(host, port) -> paramiko.Channel``.  Both
    raise :class:`~dssr_core.ClusterError` when the cluster cannot be reached.
    """

    def __init__(self, pool: SSHPool, cfg: SlurmSettings) -> None:
        self.pool = pool
        self.user = cfg.service_user
        self._login: Login | None = None
        #: why the service user cannot log in, found here (a local fault, named by its variable)
        self.key_problem: str | None = cfg.service_key_problem
        if self.key_problem is None and cfg.service_key_text is None:
            self.key_problem = (
                "JARVICE_SLURM_SSH_PKEY (or JARVICE_SLURM_SSH_PKEY_FILE) is not set: "
                "give the service user's private key."
            )
        elif self.key_problem is None and cfg.service_key_text is not None:
            try:
                self._login = Login(cfg.service_user, load_private_key(cfg.service_key_text, cfg.service_key_setting))
            except ConfigError as exc:
                self.key_problem = str(exc)

    @property
    def login(self) -> Login:
        if self._login is None:
            raise ClusterError(self.key_problem or "No service key.", transient=False)
        return self._login

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
        stdin: bytes | None = None,
        kind: str | None = None,
    ) -> Result:
        return self.pool.run(self.login, command, timeout=timeout, idempotent=idempotent, stdin=stdin, kind=kind)

    def open_tunnel(self, host: str, port: int) -> paramiko.Channel:
        return self.pool.open_tunnel(self.login, host, port)
