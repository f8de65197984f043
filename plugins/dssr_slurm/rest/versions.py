"""Which adapter speaks which REST API version, and picking one (``auto``) from slurmrestd's OpenAPI.

Adding a version is one entry in :data:`ADAPTERS` (and, if something changed, one adapter class holding
only that change); the supported list and ``auto`` follow from the table."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from dssr_core import ClusterError

from .adapter import Adapter
from .v0038 import V0038
from .v004x import V0039, V0040, V0041

#: REST API version -> the adapter class speaking it, oldest first. A version whose changes touch
#: nothing this server sends or reads reuses the previous class (checked against slurmrestd 26.05's
#: ``/openapi/v3`` and its recorded answers, tests/slurm_rest/samples/).
ADAPTERS: Mapping[str, type[Adapter]] = {
    "v0.0.38": V0038,
    "v0.0.39": V0039,
    "v0.0.40": V0040,
    "v0.0.41": V0041,
    "v0.0.42": V0041,
    "v0.0.43": V0041,
    "v0.0.44": V0041,  # new job state flag EXPEDITING: read as its base state
    "v0.0.45": V0041,  # ping answers lose ``pinged``/``mode``: V0039.pinged reads ``responding``
}
#: REST API versions this package speaks, oldest first.
SUPPORTED_VERSIONS = tuple(ADAPTERS)

_PATH_VERSION = re.compile(r"^/slurm/(v0\.0\.\d+)/")


def adapter_for(version: str) -> Adapter:
    """The adapter of ``version``; ValueError for a version not in :data:`ADAPTERS`."""
    try:
        cls = ADAPTERS[version]
    except KeyError:
        raise ValueError(f"unsupported REST API version {version}") from None
    return cls(version)


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
