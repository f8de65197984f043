"""Recorded slurmrestd answers (see capture_samples.py) and the job ids they are about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dssr_slurm.rest.transport import Response

ROOT = Path(__file__).resolve().parent / "samples"
VERSIONS = sorted(p.name for p in ROOT.iterdir() if (p / "ids.json").exists()) if ROOT.exists() else []


def load(version: str, name: str) -> Response:
    data: dict[str, Any] = json.loads((ROOT / version / f"{name}.json").read_text())
    body = data["body"]
    return Response(data["status"], body if isinstance(body, dict) else {}, json.dumps(body))


def ids(version: str) -> dict[str, str]:
    result: dict[str, str] = json.loads((ROOT / version / "ids.json").read_text())
    return result
