"""Test helpers: legacy upstream templates built the way a JARVICE upstream builds them; a connector double's base."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from dssr_core import Connector, JobStatus, Settings

if TYPE_CHECKING:
    from schemathesis.schemas import APIOperation, BaseSchema


#: the line an upstream template prints when the app's command succeeded
SUCCESS_MARKER = "JARVICE_CMD_SUCCESS"


def legacy_template(
    command: str = "echo hello",
    *,
    cores: int | str = 1,
    appdef: int | str = 2,
    extra: Mapping[str, str] | None = None,
    body: str = "",
) -> str:
    """A bash template as the upstream sends it, braces doubled but for ``{DOWNSTREAM_PARAMETERS}``.

    The ``KEY=VALUE`` lines sit in a no-op here-document so that the script
    stays valid bash; the body runs ``command`` and prints the success line
    when it succeeds.  ``body`` replaces that body as given (double its braces yourself).
    """
    keys: dict[str, str] = {
        "JOBOBJ_APPDEFVERSION": str(appdef),
        "JOBOBJ_INTERACTIVE": "False",
        "JOBOBJ_ARCH": "amd64",
        "JOBOBJ_NAE": "ubuntu",
        "JOBOBJ_REPO": "docker.io/library/ubuntu:24.04",
        "JOBOBJ_USER": "kirby",
        "JARVICE_CPU_CORES": str(cores),
    }
    keys.update(extra or {})
    lines = ["#!/bin/bash", "{DOWNSTREAM_PARAMETERS}", ": <<'JOBOBJ_KEYS'"]
    lines += [f"{key}={_double(value)}" for key, value in keys.items()]
    lines.append(f"JARVICE_CMD={_double(command)}")
    lines.append("JOBOBJ_KEYS")
    lines.append(body or f"( {_double(command)} ) && echo {SUCCESS_MARKER}")
    return "\n".join(lines) + "\n"


def _double(text: str) -> str:
    """Braces doubled, as ``str.format`` requires (the upstream doubles every brace but its field)."""
    return text.replace("{", "{{").replace("}", "}}")


def encode(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def submit_args(
    name: str,
    number: int,
    template: str,
    *,
    nodes: int = 1,
    key: str = "singularity",
    bearer: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """The ``args`` object of a legacy ``/submit``."""
    args: dict[str, Any] = {
        "name": name,
        "number": number,
        "nodes": nodes,
        "hpc_script": {key: encode(template)},
        "bearer": bearer,
    }
    args.update(extra)
    return args


def form(args: Any) -> dict[str, str]:
    """The form body the upstream posts: one field ``args`` holding JSON."""
    return {"args": json.dumps(args)}


class ConnectorDouble(Connector):
    """The base of a test's connector double: no jobs, a cluster that answers, and every other method unused.

    A test overrides what it exercises; the rest raises ``NotImplementedError``.
    """

    name = "double"

    def __init__(self) -> None:
        super().__init__(Settings({}))

    def snapshot(self) -> Sequence[JobStatus]:
        return []

    def ping(self) -> None:
        return None

    def submit(self, spec, executor):
        raise NotImplementedError

    def exit_status(self, ref):
        raise NotImplementedError

    def cleanup(self, ref):
        raise NotImplementedError

    def terminate(self, ref, force=False):
        raise NotImplementedError

    def release(self, ref):
        raise NotImplementedError

    def events(self, ref):
        raise NotImplementedError

    def tail(self, ref, lines):
        raise NotImplementedError

    def list_files(self, path, details=False):
        raise NotImplementedError


def each_operation(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of an OpenAPI document loaded by schemathesis; one it cannot read raises why."""
    from schemathesis.core.result import Err

    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations
