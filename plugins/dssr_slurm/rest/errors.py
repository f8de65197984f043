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
_DOWN_WORDS = re.compile(r"unable to contact|connection refused|communication|timed? ?out|not responding", re.IGNORECASE)
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
    return {n for n in (item.get("error_number", item.get("error_code")) for item in _errors(response.body)) if isinstance(n, int)}


def failed(response: Response) -> bool:
    """True when slurmrestd says the call did not succeed."""
    return response.status >= 400 or any(_errors(response.body))


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


def submit_error(response: Response, *, token_expired: bool) -> Exception:
    """A failed user submission: the user's fault (400) unless slurmrestd or Slurm is down (500)."""
    cause = "; ".join(messages(response))
    if is_auth_failure(response):
        if token_expired:
            cause = f"the token has expired ({cause})"
        return BadRequest(f"slurmrestd refused the user's token: {cause}")
    if response.status >= 502 or any(_DOWN_WORDS.search(m) for m in messages(response)):
        return ClusterError(f"slurmrestd could not submit the job (HTTP {response.status}): {cause}")
    return BadRequest(f"Slurm refused the job: {cause}")


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("errors")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]
