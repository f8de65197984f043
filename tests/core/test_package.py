"""The public surface of dssr_core."""

from __future__ import annotations

import importlib

import dssr_core


def test_every_name_in_all_imports() -> None:
    module = importlib.import_module("dssr_core")
    missing = [name for name in dssr_core.__all__ if not hasattr(module, name)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec("from dssr_core import *", namespace)  # noqa: S102 - the star import is what users write
    assert set(dssr_core.__all__) <= set(namespace)


def test_all_has_no_duplicates() -> None:
    assert len(dssr_core.__all__) == len(set(dssr_core.__all__))


def test_the_library_imports_neither_flask_nor_a_plugin() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dssr_core; "
        "bad = [m for m in ('flask', 'dssr_local', 'dssr_slurm', 'dssr_singularity', 'dssr_server') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_errors_map_to_http_status_in_one_place() -> None:
    assert dssr_core.BadRequest("x").http_status == 400
    assert dssr_core.NotFound("x").http_status == 404
    assert dssr_core.ClusterError("x").http_status == 500
    assert dssr_core.PluginError("x").http_status == 500
    assert all(issubclass(cls, dssr_core.DssrError) for cls in (
        dssr_core.BadRequest, dssr_core.NotFound, dssr_core.ClusterError, dssr_core.PluginError, dssr_core.ConfigError,
    ))
