"""slurmrestd's errors as this server's answers: the user's fault is a 400, a cluster failure a 500."""

from __future__ import annotations

import pytest

from dssr_core import BadRequest, ClusterError
from dssr_slurm.rest import errors
from dssr_slurm.rest.transport import Response

from .samples import VERSIONS, ids, load

needs_samples = pytest.mark.skipif(not VERSIONS, reason="no recorded samples")


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_partition_is_a_bad_request_in_slurms_words(version: str) -> None:
    error = errors.submit_error(load(version, "submit_bad_partition"), token_expired=False, slurm_up=True)
    assert isinstance(error, BadRequest) and "Invalid partition name specified" in str(error)


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_expired_user_token_is_a_bad_request_naming_the_expiry(version: str) -> None:
    error = errors.submit_error(load(version, "submit_expired_token"), token_expired=True, slurm_up=True)
    assert isinstance(error, BadRequest)
    assert "refused the user's token" in str(error) and "expired" in str(error)


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_held_submission_notice_is_not_a_failure(version: str) -> None:
    answer = load(version, "submit_held")
    assert not errors.failed(answer) and isinstance(answer.body["job_id"], int)


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_job_is_a_cluster_error_for_status_calls(version: str) -> None:
    answer = load(version, "job_unknown")
    assert errors.failed(answer) and errors.is_gone(answer)
    assert isinstance(errors.status_error(answer, "reading job 999999"), ClusterError)


def test_rejected_token_with_http_401_is_a_bad_request() -> None:
    answer = Response(401, {"errors": [{"error": "Authentication failure", "error_number": 1007}]}, "")
    error = errors.submit_error(answer, token_expired=False, slurm_up=True)
    assert isinstance(error, BadRequest) and "Authentication failure" in str(error)


def test_hang_up_while_slurmctld_is_down_is_a_cluster_error() -> None:
    answer = Response(500, {"errors": [{"error": "Zero Bytes were transmitted or received", "error_code": 5005}]}, "")
    assert isinstance(errors.submit_error(answer, token_expired=False, slurm_up=False), ClusterError)
    assert isinstance(errors.submit_error(answer, token_expired=False, slurm_up=True), BadRequest)


def test_gateway_errors_are_cluster_errors() -> None:
    answer = Response(503, {}, "Service Unavailable")
    assert isinstance(errors.submit_error(answer, token_expired=False, slurm_up=False), ClusterError)


def test_token_in_an_error_text_is_scrubbed() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJraXJieSJ9.c2lnbmF0dXJl"
    answer = Response(400, {"errors": [{"error": f"bad token {token}"}]}, "")
    error = errors.submit_error(answer, token_expired=False, slurm_up=True)
    assert token not in str(error) and "<token>" in str(error)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_incomplete_accounting_record_comes_back_as_it_is_beside_the_others(version: str) -> None:
    """slurmdbd's record made from a job's end alone (named "allocation") fails no other job of the call:
    the connector alone decides what it means (dssr_slurm.connector, _accounted)."""
    from dssr_slurm.rest.backend import RestBackend
    from dssr_slurm.rest.settings import RestSettings
    from dssr_slurm.rest.transport import HttpClient

    recorded = load(version, "acct")
    first = recorded.body["jobs"][0]
    body = {**recorded.body, "jobs": [{**first, "name": "allocation"}, *recorded.body["jobs"][1:]]}

    class Recorded(HttpClient):
        def request(self, method: str, path: str, **kw: object) -> Response:
            return Response(recorded.status, body, "")

    settings = RestSettings("http", "h", 1, version, False, 1.0, token="x")
    backend = RestBackend(settings, None, client=Recorded("h", 1, timeout=1))
    wanted = list(ids(version).values())
    records = backend.accounting(wanted)
    assert set(records) == set(wanted)
    assert not records[str(first["job_id"])].complete
    assert all(r.complete for j, r in records.items() if j != str(first["job_id"]))
