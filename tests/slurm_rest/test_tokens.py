"""The service account's token: obtained over SSH, renewed before it expires, never shown."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
import pytest

from dssr_core import ClusterError
from dssr_slurm.rest.tokens import ServiceToken, parse_token_output, scrub


def token(exp: float, user: str = "jarvice") -> str:
    return jwt.encode({"exp": int(exp), "sun": user}, "k" * 32, algorithm="HS256")


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str = ""


class RecordingShell:
    """Stand-in for the connector's SSH shell: answers like `scontrol token` and records the commands."""

    def __init__(self, lifespan: float) -> None:
        self.commands: list[str] = []
        self.lifespan = lifespan

    def run(self, command: str, *, timeout: float | None = None, idempotent: bool = True) -> Result:
        self.commands.append(command)
        return Result(0, f"SLURM_JWT={token(time.time() + self.lifespan)}\n")


def test_default_source_is_scontrol_token_with_the_lifespan() -> None:
    shell = RecordingShell(3600)
    ServiceToken(shell, lifespan=900).get()
    assert shell.commands == ["scontrol token lifespan=900"]


def test_token_is_reused_while_fresh_and_renewed_before_expiry() -> None:
    shell = RecordingShell(3600)
    now = [time.time()]
    source = ServiceToken(shell, clock=lambda: now[0])
    first = source.get()
    assert source.get() == first and len(shell.commands) == 1
    now[0] += 3600 - 60  # within the renewal margin
    source.get()
    assert len(shell.commands) == 2


def test_token_command_runs_over_ssh_and_may_print_a_bare_token() -> None:
    shell = RecordingShell(3600)
    assert parse_token_output(token(time.time() + 60) + "\n") is not None
    ServiceToken(shell, command_line="/opt/site/get-token jarvice").get()
    assert shell.commands == ["/opt/site/get-token jarvice"]


def test_expired_fixed_token_is_a_cluster_error_naming_the_variable() -> None:
    with pytest.raises(ClusterError, match="JARVICE_SLURMRESTD_TOKEN"):
        ServiceToken(None, fixed=token(time.time() - 10)).get()


def test_failed_token_command_says_why_without_a_token() -> None:
    class Failing:
        def run(self, command: str, *, timeout: float | None = None, idempotent: bool = True) -> Result:
            return Result(1, "", "scontrol: error: AuthAltTypes not configured\n")

    with pytest.raises(ClusterError, match="AuthAltTypes"):
        ServiceToken(Failing()).get()


def test_token_never_in_repr_or_scrubbed_text() -> None:
    secret = token(time.time() + 600)
    assert secret not in repr(ServiceToken(None, fixed=secret))
    assert secret not in scrub(f"header X-SLURM-USER-TOKEN: {secret}")
