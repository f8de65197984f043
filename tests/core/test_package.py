"""The public surface of dssr_core."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dssr_core
import dssr_core.batch


def test_every_name_in_all_imports() -> None:
    module = importlib.import_module("dssr_core")
    missing = [name for name in dssr_core.__all__ if not hasattr(module, name)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec("from dssr_core import *", namespace)  # the star import is what users write
    assert set(dssr_core.__all__) <= set(namespace)


def test_all_has_no_duplicates() -> None:
    assert len(dssr_core.__all__) == len(set(dssr_core.__all__))


def test_the_library_imports_neither_flask_pyjwt_paramiko_nor_a_plugin() -> None:
    code = (
        "import sys, dssr_core; "
        "bad = [m for m in ('flask', 'jwt', 'paramiko', 'waitress', 'prometheus_client', 'dssr_local', 'dssr_slurm', "
        "'dssr_gridengine', 'dssr_singularity', 'dssr_server') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_errors_map_to_http_status_in_one_place() -> None:
    assert dssr_core.BadRequest("x").http_status == 400
    assert dssr_core.NotFound("x").http_status == 404
    assert dssr_core.ClusterError("x").http_status == 500
    assert dssr_core.PluginError("x").http_status == 500
    assert all(
        issubclass(cls, dssr_core.DssrError)
        for cls in (
            dssr_core.BadRequest,
            dssr_core.NotFound,
            dssr_core.ClusterError,
            dssr_core.PluginError,
            dssr_core.ConfigError,
        )
    )


def test_a_regular_install_ships_every_module_and_plugin(tmp_path: Path) -> None:
    """`pip install .` (not editable) is how sites deploy: the wheel must hold
    every module and data file of every package, and the plugin entry points."""
    root = Path(__file__).resolve().parents[2]
    # Build from a clean copy: an egg-info or build/ folder left in the
    # checkout by an earlier build would add files the configuration misses.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    roots = ("src", "plugins")
    for name in roots:
        shutil.copytree(root / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = tmp_path.glob("jarvice_dssr-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
        entry_points = next(name for name in shipped if name.endswith(".dist-info/entry_points.txt"))
        text = archive.read(entry_points).decode()

    expected = {
        path.relative_to(source / name).as_posix()
        for name in roots
        for path in (source / name).rglob("*")
        if path.is_file()
    }
    assert expected - shipped == set()
    for plugin in ("local =", "slurm =", "gridengine =", "shell =", "singularity =", "apptainer =", "dssr-server ="):
        assert plugin in text


def test_plugins_and_examples_use_only_public_names_of_dssr_core() -> None:
    """The public API is the contract: names of ``dssr_core.__all__``, of ``dssr_core.batch.__all__``, and
    ``dssr_core.testing``: what a third party's plugin may import, so what ours import."""
    root = Path(__file__).resolve().parents[2]
    public = {"dssr_core": set(dssr_core.__all__), "dssr_core.batch": set(dssr_core.batch.__all__)}
    offences = []
    for folder in ("plugins", "examples"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dssr_core"):
                    if node.module in public:
                        offences += [
                            f"{path.relative_to(root)}: {a.name} from {node.module}"
                            for a in node.names
                            if a.name not in public[node.module]
                        ]
                    elif not node.module.startswith("dssr_core.testing"):
                        offences.append(f"{path.relative_to(root)}: from {node.module}")
                elif isinstance(node, ast.Import):
                    offences += [
                        f"{path.relative_to(root)}: import {a.name}"
                        for a in node.names
                        if a.name.startswith("dssr_core.")
                        and a.name not in ("dssr_core.batch",)
                        and not a.name.startswith("dssr_core.testing")
                    ]
    assert offences == []


def test_each_public_name_has_one_address() -> None:
    """No name is public in both packages, and every module that is not a public package is private
    (``_name.py``): nothing is importable from a second, unofficial place."""
    assert not set(dssr_core.__all__) & set(dssr_core.batch.__all__)
    src = Path(dssr_core.__file__).parent
    public_modules = {"__init__.py", "cli.py", "metrics.py"}
    loose = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if p.name not in public_modules
        and "testing" not in p.parts
        and not any(part.startswith("_") for part in p.relative_to(src).parts)
    ]
    assert loose == []


def _our_packages_imported_by(folder: str) -> set[str]:
    """The top-level packages of this project (``dssr_*``) that the modules under ``folder`` import."""
    root = Path(__file__).resolve().parents[2]
    imported = set()
    for path in sorted((root / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
    return {name for name in imported if name.startswith("dssr_")}


def test_the_server_uses_no_plugin_and_only_the_library() -> None:
    """The server is the library's front end: it may use the library's private modules (it ships with
    them), never a plugin's."""
    assert _our_packages_imported_by("src/dssr_server") == {"dssr_core"}


def test_the_grid_engine_connector_is_built_on_dssr_core_alone() -> None:
    """A second scheduler is written on the public toolkit, not on the Slurm connector's modules."""
    assert _our_packages_imported_by("plugins/dssr_gridengine") == {"dssr_core"}


def test_the_batch_toolkit_loads_paramiko_only_when_a_connection_is_made() -> None:
    """``import dssr_core.batch`` (and the batch connectors' modules, and building a pool) loads
    neither Flask nor paramiko; the first connection does."""
    code = """
import socket, sys
import dssr_core.batch, dssr_slurm.connector, dssr_gridengine.connector
from dssr_core.batch import HostKeyPolicy, SSHPool
listener = socket.create_server(("127.0.0.1", 0))
pool = SSHPool("127.0.0.1", listener.getsockname()[1], HostKeyPolicy(), connect_timeout=2)
print(sorted(m for m in ("flask", "paramiko", "waitress", "jwt") if m in sys.modules))
try:
    pool.check_host()  # connects and starts an SSH handshake: no banner comes
except dssr_core.ClusterError:
    pass
print("paramiko" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
