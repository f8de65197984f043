"""docs/settings.md is the one table of every variable, checked against the code (issue 21).

The variables are collected from the source itself: every call of a
:class:`dssr_core.Settings` getter (``settings.integer("WAITRESS_PORT", 5000, ...)``)
in src/ and plugins/, with its name given as text, as a module constant, or
through a small helper that passes its parameter on to a getter (the
Singularity executor's ``_matching(settings, "JARVICE_SYSTEM_REGISTRY", ...)``), or
through a helper that reads ``f"{prefix}_SUFFIX"`` names under a prefix its caller gives
(``BatchSettings.common(settings, "JARVICE_SLURM", ...)`` reads ``JARVICE_SLURM_CLUSTER_ADDR``...).
``secret_text("X")`` reads ``X`` and ``X_FILE``.  A variable added to the code
without a row here fails the test, and so does a row no code reads.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "settings.md"
#: the typed getters of dssr_core.Settings (each takes the variable's name first; ``first`` takes several)
GETTERS = {"text", "integer", "number", "flag", "choice", "base64_text", "raw", "require", "first", "secret_text"}
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]\Z")
#: which component reads the variables of each source folder (the "read by" column)
COMPONENTS = {
    "src/dssr_server": "dssr-server",
    "src/dssr_core": "dssr-server, dssr",
    "plugins/dssr_local": "local connector",
    "plugins/dssr_slurm": "slurm connector",
    "plugins/dssr_gridengine": "gridengine connector",
    "plugins/dssr_singularity": "singularity executor",
}


@dataclass
class Read:
    components: set[str] = field(default_factory=set)
    #: defaults given as literals to the getters (the reference must show each)
    defaults: set[object] = field(default_factory=set)


def _component(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    folder = next((f for f in COMPONENTS if rel.startswith(f + "/")), None)
    assert folder is not None, f"{rel}: no component for this folder: add it to COMPONENTS"
    return COMPONENTS[folder]


Prefixed = dict[str, tuple[int, list[tuple[str, str, "ast.expr | None"]]]]


@dataclass
class Helpers:
    """What the first pass finds: module constants, and the functions that read variables for their callers."""

    constants: dict[str, set[str]] = field(default_factory=dict)
    #: function name -> position of the parameter it passes to a getter
    plain: dict[str, int] = field(default_factory=dict)
    #: function name -> (position of its prefix parameter, [(suffix, getter, default)] it reads under it)
    prefixed: Prefixed = field(default_factory=dict)
    #: the getter calls inside the prefixed helpers (recorded at their callers)
    inside: set[int] = field(default_factory=set)


def _helpers(trees: list[ast.Module]) -> Helpers:
    found = Helpers()
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.constants.setdefault(target.id, set()).add(node.value.value)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                _helper(node, found)
    return found


def _helper(node: ast.FunctionDef, found: Helpers) -> None:
    params = [a.arg for a in node.args.args]
    calls = [call for call in ast.walk(node) if _getter(call)]
    for call in calls:
        if isinstance(call.args[0], ast.Name) and call.args[0].id in params:
            found.plain[node.name] = params.index(call.args[0].id)
        under = _prefixed(call, params)
        if under is not None:
            entry = found.prefixed.setdefault(node.name, (params.index(under[0]), []))
            entry[1].append((under[1], call.func.attr, _default(call, call.func.attr)))  # type: ignore[attr-defined]  # _getter checked the call's func is an attribute
    if node.name not in found.prefixed:
        return
    # its plain reads are its callers' too, read by them alone
    found.inside.update(id(call) for call in calls)
    for call in calls:
        if _prefixed(call, params) is None:
            method = call.func.attr  # type: ignore[attr-defined]  # _getter checked the call's func is an attribute
            names = call.args if method == "first" else call.args[:1]
            found.prefixed[node.name][1].extend(
                ("=" + name, method, _default(call, method)) for arg in names for name in _names(arg, found.constants)
            )


@functools.cache
def collect() -> dict[str, Read]:
    files = sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("plugins/**/*.py")])
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    found = _helpers(list(trees.values()))
    reads: dict[str, Read] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and id(node) not in found.inside:
                _read(node, found, reads, _component(path))
    return reads


def _read(node: ast.Call, found: Helpers, reads: dict[str, Read], component: str) -> None:
    called = getattr(node.func, "attr", getattr(node.func, "id", None))
    if called in found.prefixed and len(node.args) > found.prefixed[called][0]:
        prefix = node.args[found.prefixed[called][0]]
        if isinstance(prefix, ast.Constant) and isinstance(prefix.value, str):
            for suffix, method, default in found.prefixed[called][1]:
                name = suffix[1:] if suffix.startswith("=") else f"{prefix.value}_{suffix}"
                _record(reads, name, component, method, default)
        return
    if _getter(node):
        method = node.func.attr  # type: ignore[attr-defined]  # _getter checked that the call's func is an attribute
        args, default = (node.args if method == "first" else node.args[:1]), _default(node, method)
    elif isinstance(node.func, ast.Name) and len(node.args) > found.plain.get(node.func.id, len(node.args)):
        method, args, default = "helper", [node.args[found.plain[node.func.id]]], None
    else:
        return
    for arg in args:
        for name in _names(arg, found.constants):
            _record(reads, name, component, method, default)


def _record(reads: dict[str, Read], name: str, component: str, method: str, default: ast.expr | None) -> None:
    read = reads.setdefault(name, Read())
    read.components.add(component)
    if isinstance(default, ast.Constant) and default.value not in (None, ""):
        read.defaults.add(default.value)
    if method == "secret_text":
        reads.setdefault(name + "_FILE", Read()).components.add(component)


def _default(call: ast.Call, method: str) -> ast.expr | None:
    return call.args[1] if method in ("integer", "number", "flag", "choice", "text") and len(call.args) > 1 else None


def _prefixed(call: ast.Call, params: list[str]) -> tuple[str, str] | None:
    """(prefix parameter, suffix) of a getter called with ``f"{prefix}_SUFFIX"``, else None."""
    arg = call.args[0]
    if isinstance(arg, ast.JoinedStr) and len(arg.values) == 2:
        head, tail = arg.values
        if (
            isinstance(head, ast.FormattedValue)
            and isinstance(head.value, ast.Name)
            and head.value.id in params
            and isinstance(tail, ast.Constant)
            and isinstance(tail.value, str)
            and tail.value.startswith("_")
        ):
            return head.value.id, tail.value[1:]
    return None


def _getter(node: ast.AST) -> TypeGuard[ast.Call]:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in GETTERS
        and bool(node.args)
    )


def _names(arg: ast.expr, constants: dict[str, set[str]]) -> set[str]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        values = {arg.value}
    elif isinstance(arg, ast.Name):
        values = constants.get(arg.id, set())
    elif isinstance(arg, ast.Attribute):
        values = constants.get(arg.attr, set())
    else:
        values = set()
    return {value for value in values if VARIABLE.match(value)}


def reference() -> dict[str, tuple[str, str, str]]:
    """docs/settings.md's rows: name -> (default, read by, meaning)."""
    rows: dict[str, tuple[str, str, str]] = {}
    for line in REFERENCE.read_text().splitlines():
        match = re.match(r"\| `([A-Z0-9_]+)` \| (.*?) \| (.*?) \| (.*) \|$", line)
        if match:
            name, default, component, meaning = match.groups()
            assert name not in rows, f"{name} has two rows"
            rows[name] = (default, component, meaning)
    return rows


def test_the_collector_finds_the_variables_of_each_kind_of_read() -> None:
    reads = collect()
    assert reads["WAITRESS_PORT"].defaults == {5000}  # a literal name and default
    assert "JARVICE_BAREMETAL_CONNECTOR" in reads  # a module constant (CONNECTOR_VARIABLE)
    assert "JARVICE_SYSTEM_REGISTRY" in reads  # through the executor's _matching helper
    assert "JARVICE_JOB_SCRATCH_DIR" in reads  # the second name of settings.first
    assert "JARVICE_SLURM_SSH_PKEY_FILE" in reads  # secret_text's file variant, under the Slurm prefix
    assert reads["JARVICE_GE_CLUSTER_PORT"].defaults == {22}  # a name under a prefix the caller gives
    assert reads["JARVICE_GE_CLUSTER_PORT"].components == {"gridengine connector"}  # read by the caller's plugin
    assert "JARVICE_CMD" not in reads  # a job's environment, not a setting


def test_every_variable_the_code_reads_has_one_row_and_every_row_is_read() -> None:
    reads, rows = collect(), reference()
    assert sorted(set(reads) - set(rows)) == [], "read by the code but missing from docs/settings.md"
    assert sorted(set(rows) - set(reads)) == [], "in docs/settings.md but read by no code"


def test_each_row_names_the_components_that_read_it() -> None:
    order = list(dict.fromkeys(", ".join(COMPONENTS.values()).split(", ")))
    for name, read in collect().items():
        parts = {part for components in read.components for part in components.split(", ")}
        expected = ", ".join(sorted(parts, key=order.index))
        assert reference()[name][1] == expected, name


def test_each_literal_default_of_the_code_is_the_rows_default() -> None:
    for name, read in collect().items():
        shown = reference()[name][0]
        for value in read.defaults:
            text = (
                ("true" if value else "false")
                if isinstance(value, bool)
                else f"{value:g}"
                if isinstance(value, float)
                else str(value)
            )
            assert f"`{text}`" in shown, f"{name}: the code's default {text!r} is not in {shown!r}"


def test_every_variable_of_the_readme_and_the_docs_settings_tables_is_in_the_reference() -> None:
    """The tables headed ``| variable | default | meaning |`` (README.md and docs/) name only real settings."""
    rows, seen = reference(), 0
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        settings_table = False
        for line in doc.read_text().splitlines():
            if not line.startswith("|"):
                settings_table = False
            elif line.startswith("| variable | default | meaning |"):
                settings_table = True
            match = re.match(r"\| `([A-Z0-9_]+)`", line)
            if settings_table and match:
                seen += 1
                name = match.group(1)
                assert name in rows, f"{doc.name}: {name} is not in docs/settings.md"
    assert seen > 60
