"""Slurm tokens: the service account's (kept fresh) and helpers that never reveal one."""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Protocol

import jwt

from dssr_core import ClusterError, ConfigError, command

#: anything shaped like a JWT (three base64url parts, the first starting ``eyJ``)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
#: renew the service token when less than this many seconds are left
RENEW_MARGIN = 120.0


def scrub(text: str) -> str:
    """``text`` with every JWT-shaped word replaced by ``<token>``."""
    return _JWT.sub("<token>", text)


def claims_of(token: str) -> dict[str, Any]:
    """The claims of a JWT, not verified (slurmrestd verifies; this only reads ``exp``, ``sun``)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.InvalidTokenError:
        return {}
    return claims if isinstance(claims, dict) else {}


def slurm_user_of(claims: dict[str, Any]) -> str | None:
    """The Slurm user a token stands for: ``sun``, else ``username``, else ``preferred_username``."""
    for key in ("sun", "username", "preferred_username"):
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def parse_token_output(text: str) -> str | None:
    """The token in ``scontrol token`` output (``SLURM_JWT=...``) or a bare token line."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("SLURM_JWT="):
            return line[len("SLURM_JWT=") :].strip() or None
    for line in text.splitlines():
        if _JWT.fullmatch(line.strip()):
            return line.strip()
    return None


class Shell(Protocol):
    def run(self, command: str, *, timeout: float | None = None, idempotent: bool = True) -> Any: ...


class ServiceToken:
    """The service account's token: fixed, or obtained over SSH and renewed before it expires.

    Sources: ``JARVICE_SLURMRESTD_TOKEN`` (used as is), ``JARVICE_SLURMRESTD_TOKEN_COMMAND``
    (run over SSH as the service user; prints ``SLURM_JWT=...`` or the bare token), or by
    default ``scontrol token lifespan=N`` over SSH.
    """

    def __init__(
        self,
        shell: Shell | None,
        *,
        fixed: str | None = None,
        command_line: str | None = None,
        lifespan: int = 1800,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._shell = shell
        self._fixed = fixed
        self._command = command_line or command("scontrol", "token", f"lifespan={lifespan}")
        self._source = "JARVICE_SLURMRESTD_TOKEN_COMMAND" if command_line else "scontrol token"
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = fixed
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServiceToken(source={'fixed' if self._fixed else self._source!r})"

    def get(self) -> str:
        """A token valid for at least :data:`RENEW_MARGIN` seconds (a fixed one as long as it lasts)."""
        with self._lock:
            if self._fixed is not None:
                exp = claims_of(self._fixed).get("exp")
                if isinstance(exp, (int, float)) and exp <= self._clock():
                    raise ClusterError(
                        "The service token JARVICE_SLURMRESTD_TOKEN has expired: give a new one, or unset it "
                        "to let the server obtain tokens with `scontrol token`.",
                        transient=False,
                    )
                return self._fixed
            if self._token is None or self._expires_soon(self._token):
                self._token = self._obtain()
            return self._token

    def invalidate(self) -> None:
        """Forget the current token (slurmrestd refused it); the next :meth:`get` obtains a new one."""
        with self._lock:
            if self._fixed is None:
                self._token = None

    def _expires_soon(self, token: str) -> bool:
        exp = claims_of(token).get("exp")
        return isinstance(exp, (int, float)) and exp - self._clock() < RENEW_MARGIN

    def _obtain(self) -> str:
        if self._shell is None:
            raise ConfigError(
                "No service token: set JARVICE_SLURMRESTD_TOKEN, or give the connector an SSH connection "
                "for `scontrol token`."
            )
        result = self._shell.run(self._command, timeout=self._timeout, idempotent=True)
        token = parse_token_output(result.stdout) if result.rc == 0 else None
        if token is None:
            lines = (result.stderr or result.stdout or "").strip().splitlines()
            why = scrub(lines[-1]) if lines else f"exit status {result.rc}"
            raise ClusterError(f"The service account could not get a Slurm token ({self._source}): {why}")
        return token
