"""slurmrestd's answers read as errors: its ``errors`` list becomes a BadRequest or a ClusterError."""

from __future__ import annotations

import re
from typing import Any

from dssr_core import BadRequest, ClusterError

from .tokens import scrub
from .transport import Response

#: Slurm error numbers meaning "your credential was refused"
_AUTH_ERRNOS = {1007}  # SLURM_PROTOCOL_AUTHENTICATION_ERROR
_AUTH_WORDS = re.compile(r"auth|token|expired|credential|jwt|unauthori[sz]ed", re.IGNORECASE)
#: words meaning slurmrestd could not reach slurmctld/slurmdbd (try again later)
_DOWN_WORDS = re.compile(
    r"unable to contact|connection refused|communication|timed? ?out|not responding", re.IGNORECASE
)
#: slurmctld closed the connection without answering (it does so to a token it rejects)
_HUNG_UP_ERRNOS = {5005}  # SLURM_COMMUNICATIONS_... "Zero Bytes were transmitted or received"
_HUNG_UP_WORDS = re.compile(r"zero bytes were transmitted", re.IGNORECASE)
#: "the job is already gone": not an error for cancel
_GONE_ERRNOS = {2017, 2021}  # ESLURM_INVALID_JOB_ID, ESLURM_ALREADY_DONE
_GONE_WORDS = re.compile(r"invalid job id|already completing or completed|already done", re.IGNORECASE)


def messages(response: Response) -> list[str]:
    """slurmrestd's error sentences (``description``, ``error``), tokens scrubbed, duplicates dropped."""
    found: list[str] = []
    for item in _errors(response.body):
        for key in ("description", "error"):
            text = item.get(key)
            if isinstance(text, str) and text.strip() and scrub(text.strip()) not in found:
                found.append(scrub(text.strip()))
    if not found and response.status >= 400:
        first = response.text.strip().splitlines()[:1]
        found.append(scrub(first[0][:200]) if first else f"HTTP {response.status}")
    return found


def errnos(response: Response) -> set[int]:
    return {
        n
        for n in (item.get("error_number", item.get("error_code")) for item in _errors(response.body))
        if isinstance(n, int)
    }


def failed(response: Response) -> bool:
    """True when slurmrestd says the call did not succeed.

    Only the HTTP status counts: slurmrestd also lists mere notices under ``errors`` in a
    successful answer (v0.0.38 reports "Job is in held state" for a held submission).
    """
    return response.status >= 400


def connection_lost(response: Response) -> bool:
    """slurmctld hung up on slurmrestd (v0.0.38's answer when slurmctld rejects the caller's token)."""
    return bool(errnos(response) & _HUNG_UP_ERRNOS) or any(_HUNG_UP_WORDS.search(m) for m in messages(response))


def is_auth_failure(response: Response) -> bool:
    if response.status in (401, 403):
        return True
    if errnos(response) & _AUTH_ERRNOS:
        return True
    return any(_AUTH_WORDS.search(m) for m in messages(response))


def is_gone(response: Response) -> bool:
    return bool(errnos(response) & _GONE_ERRNOS) or any(_GONE_WORDS.search(m) for m in messages(response))


def status_error(response: Response, what: str) -> ClusterError:
    """A failed status call (service account): always a cluster error, never a verdict on a job."""
    cause = "; ".join(messages(response))
    if is_auth_failure(response):
        return ClusterError(f"slurmrestd refused the service account's token while {what}: {cause}")
    return ClusterError(f"slurmrestd failed while {what} (HTTP {response.status}): {cause}")


def submit_error(response: Response, *, token_expired: bool, slurm_up: bool) -> Exception:
    """A failed user submission: the user's fault (400) unless slurmrestd or Slurm is down (500).

    ``slurm_up`` says whether slurmctld answers the service account right now: when it does,
    a connection slurmctld dropped on the user's call means it refused the user's token.
    """
    cause = "; ".join(messages(response))
    if connection_lost(response) and (slurm_up or token_expired):
        why = "the token has expired" if token_expired else "slurmctld rejected it and closed the connection"
        return BadRequest(f"slurmrestd refused the user's token: {why} ({cause})")
    if is_auth_failure(response):
        if token_expired:
            cause = f"the token has expired ({cause})"
        return BadRequest(f"slurmrestd refused the user's token: {cause}")
    if response.status >= 502 or connection_lost(response) or any(_DOWN_WORDS.search(m) for m in messages(response)):
        return ClusterError(f"slurmrestd could not submit the job (HTTP {response.status}): {cause}")
    return BadRequest(f"Slurm refused the job: {cause}")


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("errors")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]
