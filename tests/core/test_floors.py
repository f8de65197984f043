"""The floors of docs/architecture.md: each package imports only from the floors below it.

Every import of every module under src/ and plugins/ (relative ones resolved) is
checked against the picture; a new import that runs up a floor fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("dssr_local", "dssr_singularity", "dssr_slurm", "dssr_gridengine")


def floor(module: str) -> str:
    """The floor (docs/architecture.md) a module of this project stands on."""
    if module.startswith("dssr_core.batch"):
        return "batch"
    if module.startswith("dssr_core.testing"):
        return "testing"
    if module.startswith("dssr_core"):
        return "core"
    if module.startswith("dssr_server"):
        return "server"
    return "plugin"


#: what each floor may import of this project: floors below it, never a plugin (plugins are found by entry point)
ALLOWED = {
    "core": {"core"},
    "batch": {"core", "batch"},
    "testing": {"core", "testing"},
    "plugin": {"core", "batch"},
    "server": {"core", "server"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / ("src" if path.is_relative_to(ROOT / "src") else "plugins")).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in ``path``, relative ones made absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module, [a.name for a in node.names]))
    return found


def ours(module: str) -> bool:
    return module.split(".")[0] in ("dssr_core", "dssr_server", *PLUGINS)


def test_no_import_runs_up_a_floor_and_no_plugin_imports_another() -> None:
    offences = []
    files = [*ROOT.glob("src/**/*.py"), *ROOT.glob("plugins/**/*.py")]
    assert len(files) > 80
    for path in sorted(files):
        here = module_name(path)
        for line, module, _ in imports(path):
            if not ours(module):
                continue
            same_plugin = floor(here) == "plugin" and module.split(".")[0] == here.split(".")[0]
            if not same_plugin and floor(module) not in ALLOWED[floor(here)]:
                offences.append(f"{path.relative_to(ROOT)}:{line}: {here} ({floor(here)}) imports {module}")
    assert offences == []


def test_web_and_ssh_libraries_stay_on_their_floors() -> None:
    """Flask and waitress only in the server; paramiko only where SSH is made (the batch floor and
    the Slurm plugin's tunnels)."""
    where: dict[str, set[str]] = {"flask": set(), "waitress": set(), "paramiko": set()}
    for path in sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("plugins/**/*.py")]):
        for _, module, _ in imports(path):
            top = module.split(".")[0]
            if top in where:
                where[top].add(floor(module_name(path)) + ":" + module_name(path).split(".")[0])
    assert where["flask"] <= {"server:dssr_server"} and where["waitress"] <= {"server:dssr_server"}
    assert where["paramiko"] <= {"batch:dssr_core", "plugin:dssr_slurm"}


def test_the_floor_picture_is_the_one_in_the_docs() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for package in ("dssr_server", "dssr_core.testing", "dssr_core.batch", "dssr_core", *PLUGINS):
        assert f"`{package}`" in text, package
