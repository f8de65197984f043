"""Which adapter speaks which REST API version, and picking one (``auto``) from slurmrestd's OpenAPI."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from dssr_core import ClusterError

from .adapter import Adapter
from .settings import SUPPORTED_VERSIONS
from .v0038 import V0038
from .v004x import V004x

_PATH_VERSION = re.compile(r"^/slurm/(v0\.0\.\d+)/")


def adapter_for(version: str) -> Adapter:
    if version == "v0.0.38":
        return V0038(version)
    if version in SUPPORTED_VERSIONS:
        return V004x(version)
    raise ValueError(f"unsupported REST API version {version}")


def offered(openapi: Mapping[str, Any]) -> list[str]:
    """The ``/slurm/vX/`` versions an OpenAPI document lists, oldest first."""
    paths: Iterable[str] = (openapi.get("paths") or {}).keys()
    found = {m[1] for m in (_PATH_VERSION.match(p) for p in paths) if m}
    return sorted(found, key=lambda v: int(v.rsplit(".", 1)[1]))


def newest_supported(openapi: Mapping[str, Any], where: str) -> str:
    versions = offered(openapi)
    usable = [v for v in versions if v in SUPPORTED_VERSIONS]
    if not usable:
        raise ClusterError(
            f"slurmrestd at {where} offers REST API versions {', '.join(versions) or 'none'}; "
            f"this server speaks {', '.join(SUPPORTED_VERSIONS)} (set JARVICE_SLURMRESTD_API_VERSION).",
            transient=False,
        )
    return usable[-1]
