"""Readiness from the last cluster contact, and what the library records for metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dssr_core import BadRequest, ClusterError, Contact, Downstream, Settings, TokenVerifier, metrics
from dssr_core.batch._sharing import SharedSnapshot
from dssr_local.connector import LocalConnector
from dssr_local.shell import ShellExecutor


class Recording(metrics.Recorder):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def snapshot_refreshed(self, ok: bool) -> None:
        self.events.append(("snapshot", ok))

    def token_refused(self, reason: str) -> None:
        self.events.append(("refused", reason))

    def cluster_call(self, kind: str, seconds: float, outcome: str) -> None:
        self.events.append(("call", (kind, outcome)))

    def jobs_seen(self, counts: Mapping[str, int]) -> None:
        self.events.append(("jobs", dict(counts)))


@pytest.fixture
def recording() -> Iterator[Recording]:
    rec = Recording()
    previous = metrics.install(rec)
    yield rec
    metrics.install(previous)


class Contacted(LocalConnector):
    """The local connector, told what its last cluster contact was (the readiness rules under test)."""

    contact: Contact | None = None

    def last_contact(self) -> Contact | None:
        return self.contact


@pytest.fixture
def downstream(tmp_path: Path) -> Iterator[Downstream]:
    conn = Contacted(Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path)}))
    ds = Downstream(conn, ShellExecutor(Settings({})))
    yield ds
    ds.close()


def test_ready_when_the_last_contact_is_recent_and_good(downstream: Downstream) -> None:
    downstream.connector.contact = Contact(time.time() - 5, True)  # type: ignore[attr-defined]  # the connector double's contact
    ok, reason = downstream.readiness(60)
    assert ok and reason["status"] == "OK" and 4 <= reason["age"] <= 10


def test_not_ready_when_the_last_contact_is_too_old(downstream: Downstream) -> None:
    downstream.connector.contact = Contact(time.time() - 120, True)  # type: ignore[attr-defined]  # the connector double's contact
    ok, reason = downstream.readiness(60)
    assert not ok and reason["status"] == "BAD" and "no contact with the cluster for" in reason["reason"]


def test_not_ready_when_the_last_contact_failed_and_the_reason_says_why(downstream: Downstream) -> None:
    downstream.connector.contact = Contact(time.time(), False, "squeue failed on the cluster: boom")  # type: ignore[attr-defined]  # the connector double's contact
    ok, reason = downstream.readiness(60)
    assert not ok and reason["reason"] == "squeue failed on the cluster: boom"


def test_the_snapshot_records_each_refresh_outcome_as_the_last_contact(recording: Recording) -> None:
    answers: list[list[int] | ClusterError] = [[1], ClusterError("squeue failed on the cluster: down")]

    def fetch() -> list[int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    snap = SharedSnapshot(fetch, ttl=0)
    assert snap.last_contact is None
    snap.get()
    assert snap.last_contact is not None and snap.last_contact.ok
    with pytest.raises(ClusterError):
        snap.get()
    assert snap.last_contact is not None and not snap.last_contact.ok
    assert snap.last_contact.error == "squeue failed on the cluster: down"
    assert [e for e in recording.events if e[0] == "snapshot"] == [("snapshot", True), ("snapshot", False)]


def test_the_heartbeat_refreshes_a_stale_contact_without_any_request(
    downstream: Downstream, recording: Recording
) -> None:
    downstream.connector.contact = Contact(time.time() - 600, True)  # type: ignore[attr-defined]  # the connector double's contact
    downstream.start_heartbeat(0.5)
    deadline = time.monotonic() + 5
    while not any(e[0] == "jobs" for e in recording.events) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("jobs", {}) in recording.events


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _verifier(key: Any) -> TokenVerifier:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return TokenVerifier.from_settings(
        Settings({"JARVICE_JWT_PUBLIC_KEY": pem.decode(), "JARVICE_JWT_AUDIENCE": "jarvice"})
    )


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"exp": -1000}, "expired"),
        ({"aud": "another-portal", "azp": "x"}, "audience"),
        (None, "missing"),
    ],
)
def test_refused_bearer_tokens_are_counted_by_reason(key: Any, recording: Recording, claims: Any, reason: str) -> None:
    token = ""
    if claims is not None:
        now = int(time.time())
        payload = {"iat": now, "exp": now + 600, "email": "kirby@example.com", "aud": "jarvice", **claims}
        if payload["exp"] < 0:
            payload["exp"] = now - 1000
        token = jwt.encode(payload, key, algorithm="RS256")
    with pytest.raises(BadRequest):
        _verifier(key).verify_token(token)
    assert ("refused", reason) in recording.events


def test_a_good_token_is_not_counted_as_refused(key: Any, recording: Recording) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iat": now, "exp": now + 600, "email": "k@example.com", "aud": "jarvice"}, key, algorithm="RS256"
    )
    assert _verifier(key).verify_token(token).email == "k@example.com"
    assert not [e for e in recording.events if e[0] == "refused"]


def test_the_library_records_nothing_and_imports_no_metrics_package_by_default() -> None:
    import subprocess
    import sys

    code = "import sys, dssr_core; dssr_core.metrics.recorder().cluster_call('x', 1.0, 'ok'); print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
