"""The written OpenAPI 3.1 document of ``/v1``, every operation driven by schemathesis against the real server.

Every answer must be what the document says (status, media type, schema), no
answer is a 5xx, and every error is ``application/problem+json``.  Submitted
jobs are made held first, so that no generated command line ever runs.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import each_operation
from tests.server.live import Server
from tests.v1client import V1

#: the shared token: with it set, schemathesis also checks that a bad or missing token is refused
TOKEN = "fuzz-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def document() -> dict[str, Any]:
    written: dict[str, Any] = json.loads(resources.files("dssr_server").joinpath("v1_openapi.json").read_text())
    return written


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dssr-v1-openapi")
    server = Server(root / "state", env={"JARVICE_LOCAL_MAX_JOBS": "1", "JARVICE_DSSR_AUTH_TOKEN": TOKEN}).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log()


SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = {operation.label: operation for operation in each_operation(SCHEMA)}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_v1_operation_answers_as_documented_never_5xx_and_errors_as_problems(api: Server, label: str) -> None:
    job = V1(api.url, TOKEN).post("/v1/jobs", {"name": "fuzz-target", "command": "true", "held": True}).json()

    @settings(max_examples=40, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(OPERATIONS[label].as_strategy())
    def call(case) -> None:
        if isinstance(case.body, dict):
            case.body["held"] = True  # a generated command line never runs
        if case.path_parameters and "job" in case.path_parameters and hash(str(case.path_parameters)) % 3 == 0:
            case.path_parameters["job"] = job["id"]  # some calls reach a real job
        if case.query and case.query.get("follow") in (True, "true"):
            case.query["follow"] = "false"  # a held job's output would be followed for ever
        # a schema-valid spec may still be refused (a walltime, an image name): acceptance is not asserted
        response = case.call_and_validate(base_url=api.url, headers=AUTH, excluded_checks=[positive_data_acceptance])
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            headers = {key.lower(): value for key, value in response.headers.items()}
            kind = headers["content-type"]
            assert (kind if isinstance(kind, str) else kind[0]) == "application/problem+json", response.text
            assert response.json()["status"] == response.status_code

    call()


def test_the_document_is_openapi_3_1_and_every_error_is_a_problem() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method == "parameters" or path == "/v1/openapi.json":
                continue
            for code, answer in op["responses"].items():
                if code >= "400":
                    assert list(answer["content"]) == ["application/problem+json"], (path, method, code)


def test_the_server_serves_the_packaged_document(api: Server) -> None:
    assert V1(api.url).get("/v1/openapi.json").json() == document()
