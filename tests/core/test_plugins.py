"""Plugin discovery through entry points, with a real second distribution installed by pip."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from dssr_core import (
    Connector,
    PluginError,
    Settings,
    available_connectors,
    available_executors,
    load_connector,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "third-party-plugin"


def pip_install(source: Path, target: Path) -> None:
    """``pip install`` a distribution into ``target`` (a folder put on sys.path by the test)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    if _can_build_offline():
        command.insert(4, "--no-build-isolation")
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def _can_build_offline() -> bool:
    """True when this interpreter can build a wheel itself (else pip fetches setuptools)."""
    find = importlib.util.find_spec
    return find("setuptools") is not None and (
        find("wheel") is not None or find("setuptools.command.bdist_wheel") is not None
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding two distributions installed by pip: the example plugin and a broken one."""
    work = tmp_path_factory.mktemp("plugins")
    example = work / "example-src"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    broken = work / "broken-src"
    broken.mkdir()
    (broken / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "dssr-broken-connector"
        version = "0.1.0"
        [project.entry-points."dssr.connectors"]
        broken = "dssr_broken_missing.connector:BrokenConnector"
        classless = "dssr_core:NoSuchConnector"
        [tool.setuptools]
        packages = []
    """)
    )
    target = work / "site"
    pip_install(example, target)
    pip_install(broken, target)
    return target


@pytest.fixture
def with_site(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in [m for m in sys.modules if m == "dssr_example" or m.startswith("dssr_example.")]:
        del sys.modules[module]


def test_bundled_plugins_are_listed_without_importing_them() -> None:
    connectors, executors = available_connectors(), available_executors()
    assert {"local", "slurm"} <= set(connectors)
    assert {"shell", "singularity", "apptainer"} <= set(executors)
    assert connectors["local"] == "dssr_local.connector:LocalConnector"


def test_the_listing_is_read_only() -> None:
    with pytest.raises(TypeError):
        available_connectors()["pbs"] = "x:y"  # type: ignore[index]  # the write a read-only mapping refuses, on purpose


def test_a_connector_from_another_distribution_is_listed(with_site: Path) -> None:
    assert available_connectors()["example"] == "dssr_example.connector:ExampleConnector"


def test_a_connector_from_another_distribution_is_built_with_the_settings(with_site: Path) -> None:
    connector = load_connector("example", Settings({"DSSR_EXAMPLE_GREETING": "hi there"}))
    assert isinstance(connector, Connector) and connector.name == "example"
    assert vars(connector)["greeting"] == "hi there"
    assert Path(sys.modules["dssr_example.connector"].__file__ or "").is_relative_to(with_site)


def test_an_unknown_connector_lists_the_installed_ones(with_site: Path) -> None:
    with pytest.raises(PluginError) as info:
        load_connector("pbs", Settings({}))
    names = ", ".join(sorted(available_connectors()))
    assert str(info.value) == f'No such connector "pbs". Available connectors: {names}'
    assert "example" in names and "local" in names


def test_a_connector_that_cannot_be_imported_names_its_package(with_site: Path) -> None:
    with pytest.raises(PluginError, match="cannot be imported .*install or repair the package 'dssr-broken-connector'"):
        load_connector("broken", Settings({}))


def test_a_connector_whose_class_is_missing_names_its_package(with_site: Path) -> None:
    with pytest.raises(PluginError, match="cannot be imported .*install or repair the package 'dssr-broken-connector'"):
        load_connector("classless", Settings({}))


def test_an_unknown_executor_lists_the_installed_ones() -> None:
    from dssr_core import load_executor

    with pytest.raises(PluginError, match='No such executor "docker". Available executors: .*shell.*singularity'):
        load_executor("docker", Settings({}))


def test_a_connector_from_another_distribution_adds_its_own_doctor_checks(with_site: Path) -> None:
    import io

    from dssr_core.cli import main

    out = io.StringIO()
    assert main(["--connector", "example", "--executor", "shell", "doctor"], out=out, settings=Settings({})) == 1
    assert out.getvalue().splitlines() == [
        "OK settings parse — connector example, executor shell",
        "OK the example cluster answers",
        "FAIL DSSR_EXAMPLE_GREETING is set — jobs print a default line; set it to your own",
    ]
    out = io.StringIO()
    assert (
        main(
            ["--connector", "example", "--executor", "shell", "doctor"],
            out=out,
            settings=Settings({"DSSR_EXAMPLE_GREETING": "hi"}),
        )
        == 0
    )
    assert out.getvalue().splitlines()[-1] == "OK DSSR_EXAMPLE_GREETING is set — jobs will print 'hi'"
