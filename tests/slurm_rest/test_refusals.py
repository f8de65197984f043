"""A job no node can run is refused over slurmrestd as ``sbatch`` refuses it over SSH, from answers
recorded from the real slurmrestd of every version (samples/*/job_never_runs.json, ...)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dssr_core import BadRequest, ClusterError
from dssr_slurm.rest import judge
from dssr_slurm.rest.backend import RestBackend
from dssr_slurm.rest.settings import RestSettings
from dssr_slurm.rest.transport import HttpClient, Response
from dssr_slurm.states import never_runs

from .samples import VERSIONS, load

JOBID = "4242"


class Replay(HttpClient):
    """Answers each ``METHOD path-prefix`` with the next recorded answer given for it; records every call."""

    def __init__(self, answers: dict[str, list[Response]]) -> None:
        super().__init__("h", 1, timeout=1)
        self.answers = answers
        self.calls: list[str] = []

    def request(self, method: str, path: str, **kw: Any) -> Response:
        self.calls.append(f"{method} {path}")
        key = f"{method} {path.split('?')[0].rsplit('/', 1)[-1]}"
        queue = self.answers[key]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        items = kw.get("items")
        if items is None or answer.status >= 400:
            return answer
        field, convert = items  # converted as the real transport converts an answer decoded item by item
        converted = [c for c in (convert(item) for item in answer.body.get(field) or []) if c is not None]
        return Response(answer.status, {**answer.body, field: converted}, answer.text)


def backend(version: str, **answers: list[Response]) -> tuple[RestBackend, Replay]:
    client = Replay({key.replace("_", " ", 1).replace("JOB", JOBID): value for key, value in answers.items()})
    settings = RestSettings("http", "h", 1, version, False, 1.0, token="x")
    return RestBackend(settings, None, client=client), client


def unjudged(answer: Response) -> Response:
    """The same job before slurmctld looked at it: pending, no reason yet (as read right after a release)."""
    body = copy.deepcopy(answer.body)
    body["jobs"][0]["state_reason"] = "None"
    return Response(answer.status, body, answer.text)


@pytest.mark.parametrize("version", VERSIONS)
def test_released_job_no_node_can_run_is_cancelled_and_refused_in_slurms_words(version: str) -> None:
    rest, client = backend(
        version,
        POST_JOB=[load(version, "release_never_runs")],
        GET_JOB=[load(version, "job_never_runs")],
        DELETE_JOB=[load(version, "cancel_gone")],
    )
    with pytest.raises(BadRequest, match="Slurm refused the job: Requested node configuration is not available"):
        rest.release(JOBID)
    assert f"DELETE /slurm/{version}/job/{JOBID}" in client.calls


@pytest.mark.parametrize("version", VERSIONS)
def test_job_too_big_for_its_partition_is_refused_though_slurm_released_it(version: str) -> None:
    """slurmctld lifts the hold, then answers the release with an error (HTTP 500, 422 from 26.05)."""
    rest, client = backend(
        version,
        POST_JOB=[load(version, "release_part_config")],
        GET_JOB=[load(version, "job_part_config")],
        DELETE_JOB=[load(version, "cancel_gone")],
    )
    with pytest.raises(BadRequest, match="Requested partition configuration not available now"):
        rest.release(JOBID)
    assert f"DELETE /slurm/{version}/job/{JOBID}" in client.calls


@pytest.mark.parametrize("version", VERSIONS)
def test_released_job_that_can_run_is_left_alone(version: str) -> None:
    rest, client = backend(
        version,
        POST_JOB=[load(version, "release_held")] if version != "v0.0.38" else [Response(200, {"errors": []}, "{}")],
        GET_JOB=[load(version, "job_running")],
    )
    rest.release(JOBID)
    assert not [call for call in client.calls if call.startswith("DELETE")]


def test_a_failed_release_of_a_job_that_may_run_stays_a_cluster_error() -> None:
    held = copy.deepcopy(load("v0.0.42", "job_never_runs").body)
    held["jobs"][0]["state_reason"] = "JobHeldUser"
    rest, client = backend(
        "v0.0.42", POST_JOB=[load("v0.0.42", "release_part_config")], GET_JOB=[Response(200, held, "")]
    )
    with pytest.raises(ClusterError, match="Job update requested failed"):
        rest.release(JOBID)
    assert not [call for call in client.calls if call.startswith("DELETE")]


def test_the_verdict_is_awaited_until_slurmctld_has_looked_at_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge, "VERDICT_POLL", 0.0)
    judged = load("v0.0.42", "job_never_runs")
    rest, client = backend(
        "v0.0.42",
        POST_JOB=[load("v0.0.42", "release_never_runs")],
        GET_JOB=[unjudged(judged), unjudged(judged), judged],
        DELETE_JOB=[load("v0.0.42", "cancel_gone")],
    )
    with pytest.raises(BadRequest, match="BadConstraints"):
        rest.release(JOBID)
    assert client.calls.count(f"GET /slurm/v0.0.42/job/{JOBID}") == 3


def test_a_job_slurmctld_has_not_looked_at_in_time_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge, "VERDICT_POLL", 0.01)
    monkeypatch.setattr(judge, "VERDICT_WAIT", 0.05)
    rest, client = backend(
        "v0.0.42",
        POST_JOB=[load("v0.0.42", "release_never_runs")],
        GET_JOB=[unjudged(load("v0.0.42", "job_never_runs"))],
    )
    rest.release(JOBID)
    assert not [call for call in client.calls if call.startswith("DELETE")]


@pytest.mark.parametrize("reason", ["None", "", "Resources", "Priority", "JobHeldUser", "ReqNodeNotAvail", "BeginTime"])
def test_reasons_to_wait_are_not_refusals(reason: str) -> None:
    assert never_runs(reason) is None


@pytest.mark.parametrize("reason", ["BadConstraints", "PartitionNodeLimit", "PartitionConfig"])
def test_reasons_slurm_never_starts_a_job_for_are_refusals(reason: str) -> None:
    assert never_runs(reason)


def test_a_failed_look_at_the_released_job_leaves_the_submission_as_it_is() -> None:
    down = Response(502, {}, "Bad Gateway")
    rest, client = backend("v0.0.42", POST_JOB=[load("v0.0.42", "release_never_runs")], GET_JOB=[down])
    rest.release(JOBID)  # released; whether a node can run it is not known, and that is no error
    assert not [call for call in client.calls if call.startswith("DELETE")]
