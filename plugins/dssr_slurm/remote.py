"""Commands on the cluster as the service user (``jarvice``) or as a job's user, over pooled SSH."""

from __future__ import annotations

import paramiko

from dssr_core import ClusterError, ConfigError
from dssr_core import HostKeyPolicy, Login, Result, SSHPool, load_private_key

from .settings import SlurmSettings


def build_pool(cfg: SlurmSettings) -> SSHPool:
    """The SSH pool of the cluster's login node, with the configured host-key policy."""
    policy = HostKeyPolicy(
        known_hosts=cfg.known_hosts,
        expected_fingerprint=cfg.host_key,
        record_file=cfg.host_key_record,
        record_setting="JARVICE_SLURM_SSH_HOST_KEY_RECORD",
        known_hosts_setting="JARVICE_SLURM_SSH_KNOWN_HOSTS",
        fingerprint_setting="JARVICE_SLURM_SSH_HOST_KEY",
    )
    return SSHPool(cfg.host, cfg.port, policy, command_timeout=cfg.command_timeout, keepalive=cfg.keepalive)


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
        self.key_problem: str | None = None
        if cfg.service_key_text is None:
            self.key_problem = (
                "JARVICE_SLURM_SSH_PKEY (or JARVICE_SLURM_SSH_PKEY_FILE) is not set: "
                "give the service user's private key."
            )
        else:
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
