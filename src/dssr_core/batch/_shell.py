"""The service user's commands on the login (submit) host, over the pooled SSH connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ClusterError, ConfigError
from ._settings import BatchSettings
from ._ssh import Login, Result, SSHPool
from ._sshkeys import HostKeyPolicy, load_private_key

if TYPE_CHECKING:
    import paramiko


class UnusablePolicy(HostKeyPolicy):
    """The host-key policy when the configured one cannot be built (a known_hosts file that cannot
    be read, a malformed fingerprint): it refuses every key, saying why.  The fault is a local check
    of its own (start-up stops on it), so that it hides none of the others."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem

    def knows(self, host: str, port: int) -> bool | None:
        return None

    def describe(self) -> str:
        return "none usable"

    def check(self, host: str, port: int, key: paramiko.PKey) -> None:
        raise ClusterError(f"{self.problem} Refusing to connect.", transient=False)


def build_pool(cfg: BatchSettings) -> SSHPool:
    """The SSH pool of the login host, with the host-key policy ``cfg`` configures (or, when that
    cannot be built, an :class:`UnusablePolicy` saying why)."""
    policy: HostKeyPolicy
    try:
        policy = HostKeyPolicy(
            known_hosts=cfg.known_hosts,
            expected_fingerprint=cfg.host_key,
            record_file=cfg.host_key_record,
            record_setting=cfg.variable("SSH_HOST_KEY_RECORD"),
            known_hosts_setting=cfg.variable("SSH_KNOWN_HOSTS"),
            fingerprint_setting=cfg.variable("SSH_HOST_KEY"),
        )
    except ConfigError as exc:
        policy = UnusablePolicy(str(exc))
    return SSHPool(cfg.host, cfg.port, policy, command_timeout=cfg.command_timeout, keepalive=cfg.keepalive)


class ServiceShell:
    """Runs commands as the service user.

    ``run(command) -> Result`` (``.rc``, ``.stdout``, ``.stderr``) and
    ``open_tunnel(host, port)``; both raise :class:`~dssr_core.ClusterError`
    when the cluster cannot be reached.  A key that is missing or does not load
    is :attr:`key_problem` (one sentence naming the variable, never the key),
    and every command then raises.
    """

    def __init__(self, pool: SSHPool, cfg: BatchSettings) -> None:
        self.pool = pool
        self.user = cfg.service_user
        self._login: Login | None = None
        #: why the service user cannot log in, found here (a local fault, named by its variable)
        self.key_problem: str | None = cfg.service_key_problem
        if self.key_problem is None and cfg.service_key_text is None:
            key = cfg.variable("SSH_PKEY")
            self.key_problem = f"{key} (or {key}_FILE) is not set: give the service user's private key."
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
