"""Test helpers: legacy upstream templates built the way a JARVICE upstream builds them."""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping


def legacy_template(
    command: str = "echo hello",
    *,
    cores: int | str = 1,
    appdef: int | str = 2,
    extra: Mapping[str, str] | None = None,
    body: str = "",
) -> str:
    """A bash template: ``{DOWNSTREAM_PARAMETERS}`` on its own line, ``KEY=VALUE`` lines, braces doubled.

    ``body`` is appended as given (double its braces yourself).
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
    lines = ["#!/bin/bash", "{DOWNSTREAM_PARAMETERS}"]
    lines += [f"{key}={_double(value)}" for key, value in keys.items()]
    lines.append(f"JARVICE_CMD={_double(command)}")
    lines.append(body or 'run() {{ eval "$JARVICE_CMD"; }}\nrun')
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
