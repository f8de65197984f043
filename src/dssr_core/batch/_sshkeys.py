"""SSH keys: the service's and users' private keys, and the cluster's host key.

:class:`HostKeyPolicy` checks a login node's host key: against a known_hosts
file, against a ``SHA256:...`` fingerprint, or, with neither, trust on first
use (the first key seen is recorded, a changed key is refused).  Private keys
never appear in logs, errors or reprs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import threading
from typing import TYPE_CHECKING

from .._errors import ClusterError, ConfigError

if TYPE_CHECKING:
    import paramiko


log = logging.getLogger("dssr_core.batch.sshkeys")  # its name in logs, stable


def load_private_key(text: str, what: str = "the private key") -> paramiko.PKey:
    """A private key from PEM/OpenSSH text or from base64 of that text (ed25519, RSA, ECDSA).

    Raises :class:`ConfigError` naming ``what`` (never the key itself).
    """
    import paramiko  # here, not at the top: loaded with the first SSH use, not on import

    text = text.strip()
    if text.startswith(("ssh-", "ecdsa-sha2-")) or "-----BEGIN SSH2 PUBLIC KEY" in text or "PUBLIC KEY-----" in text:
        raise ConfigError(f"{what} is a public key: give the private key (its public half goes in authorized_keys).")
    if "-----BEGIN" not in text:
        try:
            text = base64.b64decode("".join(text.split()), validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigError(f"{what} is neither a PEM/OpenSSH private key nor base64 of one.") from None
    for cls in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):
        try:
            return cls.from_private_key(io.StringIO(text + "\n"))
        except paramiko.PasswordRequiredException:
            raise ConfigError(f"{what} is encrypted with a passphrase: give an unencrypted key.") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError, AssertionError):
            continue
    raise ConfigError(f"{what} does not parse as an ed25519, RSA or ECDSA private key.")


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:<base64>`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyPolicy:
    """Decides whether the key a host presents is the right one."""

    def __init__(
        self,
        known_hosts: str | None = None,
        expected_fingerprint: str | None = None,
        record_file: str | None = None,
        record_setting: str = "the host-key record",
        *,
        known_hosts_setting: str | None = None,
        fingerprint_setting: str | None = None,
    ) -> None:
        """``record_file`` (trust on first use only): first-seen keys are appended there and read back
        at the next start, so that a restart does not trust a new key; ``record_setting`` names it in errors
        (and ``known_hosts_setting``, ``fingerprint_setting`` the variables of the other two)."""
        self.known_hosts = known_hosts
        self.expected = expected_fingerprint.strip() if expected_fingerprint else None
        if self.expected and not self.expected.startswith("SHA256:"):
            named = (
                f"{fingerprint_setting}={self.expected!r}"
                if fingerprint_setting
                else (f"The expected host-key fingerprint {self.expected!r}")
            )
            raise ConfigError(f"{named} is not of the form SHA256:<base64> (as printed by ssh-keygen -lf).")
        self.record_file = record_file if not (known_hosts or self.expected) else None
        self._record_setting = record_setting
        self._seen: dict[str, str] = {}
        self._written: set[str] = set()
        self._lock = threading.Lock()
        self._host_keys: paramiko.HostKeys | None = None
        if known_hosts:
            import paramiko  # here, not at the top: loaded with the first SSH use, not on import

            try:
                self._host_keys = paramiko.HostKeys(known_hosts)
            except (OSError, paramiko.SSHException) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                named = (
                    f"{known_hosts_setting}={known_hosts!r}"
                    if known_hosts_setting
                    else (f"The known_hosts file {known_hosts!r}")
                )
                raise ConfigError(f"{named} cannot be read ({why}).") from None
        elif self.record_file and os.path.exists(self.record_file):
            self._load_record()

    def knows(self, host: str, port: int) -> bool | None:
        """Whether the known_hosts file holds a key of ``host:port`` (None without one): a file without
        it refuses every connection, which is known before connecting."""
        if self._host_keys is None:
            return None
        names = [host] if port == 22 else [f"[{host}]:{port}", host]
        return any(self._host_keys.lookup(name) is not None for name in names)

    def describe(self) -> str:
        if self._host_keys is not None:
            return f"known_hosts {self.known_hosts}"
        if self.expected:
            return f"fingerprint {self.expected}"
        if self.record_file:
            return f"trust on first use, recorded in {self.record_file}"
        return "trust on first use"

    def check(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Return when ``key`` is acceptable for ``host:port``; raise :class:`ClusterError` otherwise."""
        seen = fingerprint(key)
        if self._host_keys is not None:
            names = [host] if port == 22 else [f"[{host}]:{port}", host]
            for name in names:
                known = self._host_keys.lookup(name)
                if known is None:
                    continue
                stored = known.get(key.get_name())
                if stored is not None and stored.asbytes() == key.asbytes():
                    return
                raise ClusterError(
                    f"The SSH host key of {host}:{port} ({seen}) does not match {self.known_hosts}: refusing to connect.",
                    transient=False,
                )
            raise ClusterError(f"{host}:{port} is not in {self.known_hosts}: refusing to connect.", transient=False)
        if self.expected:
            if seen != self.expected:
                raise ClusterError(
                    f"The SSH host key of {host}:{port} is {seen}, not the configured {self.expected}: refusing to connect.",
                    transient=False,
                )
            return
        name = f"[{host}]:{port}"
        with self._lock:
            first = self._seen.setdefault(name, seen)
            if first == seen and self.record_file and name not in self._written:
                self._record(name, seen)
        if first != seen:
            hint = (
                f" If the host's key really changed, remove its line from {self.record_file} and restart."
                if self.record_file
                else ""
            )
            raise ClusterError(
                f"The SSH host key of {host}:{port} changed (was {first}, now {seen}): refusing to connect.{hint}",
                transient=False,
            )

    def _record(self, name: str, seen: str) -> None:
        assert self.record_file is not None
        try:
            with open(self.record_file, "a", encoding="utf-8") as handle:
                handle.write(f"{name} {seen}\n")
        except OSError as exc:
            log.warning("cannot record the SSH host key in %s: %s", self.record_file, exc)
            return
        self._written.add(name)

    def _load_record(self) -> None:
        assert self.record_file is not None
        try:
            with open(self.record_file, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self._record_setting}={self.record_file!r} cannot be read ({exc}).") from None
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2 or not parts[1].startswith("SHA256:"):
                raise ConfigError(
                    f"{self._record_setting}={self.record_file!r}, line {number}: "
                    "expected '[host]:port SHA256:<base64>'."
                )
            self._seen.setdefault(parts[0], parts[1])
            self._written.add(parts[0])
