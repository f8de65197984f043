"""The written OpenAPI 3 document of the legacy API, checked against the real server by schemathesis."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import each_operation
from tests.server.live import Server

#: every path of LEGACY_API.md's endpoint table (``/request/<path>`` in its two documented forms)
LEGACY_PATHS = {
    "/live": "get",
    "/gc": "get",
    "/submit": "post",
    "/nodes": "get",
    "/running": "get",
    "/queued": "get",
    "/runstatus": "post",
    "/exitstatus": "post",
    "/terminate": "post",
    "/online": "post",
    "/release": "post",
    "/events": "post",
    "/request/pvcls": "post",
    "/request/{name}/{number}/{jobid}/{method}": "post",
}


def document() -> dict[str, Any]:
    written: dict[str, Any] = json.loads(resources.files("dssr_server").joinpath("openapi.json").read_text())
    return written


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dssr-openapi")
    (root / "data").mkdir()
    server = Server(root / "state", env={"JARVICE_LOCAL_DATA_DIR": str(root / "data")}).start()
    yield server
    server.stop()


#: the packaged document (the one the server serves, see the last test), loaded at collection
SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = {operation.label: operation for operation in each_operation(SCHEMA)}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_the_server_answers_as_its_openapi_document_says(api: Server, label: str) -> None:
    # schemathesis's own pytest integration does not run under pytest 9 yet: its strategies are driven here
    @settings(max_examples=30, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(OPERATIONS[label].as_strategy())
    def call(case) -> None:
        # ``args`` is a form field holding JSON whose content (a template, a token) no schema can
        # describe fully: a schema-valid string may still be refused, so acceptance is not asserted
        case.call_and_validate(base_url=api.url, excluded_checks=[positive_data_acceptance])

    call()


#: the operations endpoints a site's probes and scraper call (issue 21: the document describes them too)
OPERATIONS_PATHS = {"/ready": "get", "/metrics": "get"}


def test_the_document_names_every_legacy_endpoint_and_method_the_probes_and_nothing_else() -> None:
    paths = document()["paths"]
    assert {path: next(iter(ops.keys() - {"parameters"})) for path, ops in paths.items()} == {
        **LEGACY_PATHS,
        **OPERATIONS_PATHS,
    }


def test_every_route_of_the_server_is_in_the_document(tmp_path: Path) -> None:
    from dssr_core import Downstream, Settings
    from dssr_server.app import create_app

    downstream = Downstream.from_settings(
        Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path)}), connector="local", executor="shell"
    )
    try:
        routes = {rule.rule for rule in create_app(downstream).url_map.iter_rules()}
    finally:
        downstream.close()
    documented = set(document()["paths"]) | {"/openapi.json", "/static/<path:filename>"}
    # /request/<path:path> is documented in its two forms (pvcls, and a job's methods); /v1 in its own document
    assert {route for route in routes - documented if not route.startswith("/v1/")} == {"/request/<path:path>"}
    assert {"/ready", "/metrics"} <= routes


def test_every_operation_documents_its_errors_as_json() -> None:
    doc = document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            codes = set(op["responses"])
            assert {"200", "405", "413"} <= codes, path
            if method == "post" and path != "/online":
                assert "400" in codes and "application/x-www-form-urlencoded" in op["requestBody"]["content"], path
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def test_the_server_serves_the_packaged_document_without_the_upstream_token(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", env={"JARVICE_DSSR_AUTH_TOKEN": "t0ken"}).start()
    try:
        answer = server.get("/openapi.json")
        assert answer.status == 200 and answer.json() == document()
        assert answer.json()["openapi"].startswith("3.")
    finally:
        server.stop()
