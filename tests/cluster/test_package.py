"""The harness as a package: its public face is what the benchmarks use, its modules stay small, and its
command line takes both spellings of a cluster kind (``up --kind ge`` and ``up-ge``). No cluster needed."""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from typing import Any, Iterator

import pytest

import tests.cluster
from tests.cluster import cli

PACKAGE = Path(tests.cluster.__file__).parent
BENCHMARKS = PACKAGE.parents[1] / "benchmarks"


def _cluster_names(path: Path) -> list[str]:
    """Every name a module takes from tests.cluster: ``from tests.cluster import X`` and ``<alias>.X`` where
    ``<alias>`` is the package imported as a module; a submodule import counts as its dotted name."""
    tree = ast.parse(path.read_text())
    aliases, names = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests.cluster"):
            if node.module != "tests.cluster":
                names.append(node.module)
            names += [a.name for a in node.names if node.module == "tests.cluster"]
        elif isinstance(node, ast.ImportFrom) and node.module == "tests":
            aliases |= {a.asname or a.name for a in node.names if a.name == "cluster"}
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith("tests.cluster.")]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            names.append(node.attr)
    return names


def test_the_benchmarks_use_only_the_public_face_of_the_harness() -> None:
    used = {f"{p.name}: {n}" for p in sorted(BENCHMARKS.glob("*.py")) for n in _cluster_names(p)}
    assert used, "no benchmark uses the harness: the check below would prove nothing"
    assert {u for u in used if u.split(": ")[1] not in tests.cluster.__all__} == set()


def test_every_public_name_exists() -> None:
    assert [n for n in tests.cluster.__all__ if not hasattr(tests.cluster, n)] == []


def test_no_module_of_the_harness_is_over_400_lines() -> None:
    long = {p.name: n for p in PACKAGE.glob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


class _Kind:
    """A stand-in cluster module: records what the CLI asks of it."""

    def __init__(self, events: list[str], name: str, alive: bool = True) -> None:
        self.events, self.name, self.is_alive = events, name, alive

    def status(self) -> dict[str, Any]:
        return {f"alive_{self.name}": self.is_alive}

    @contextlib.contextmanager
    def session_lock(self, timeout: float) -> Iterator[None]:
        self.events.append(f"lock {self.name}")
        yield
        self.events.append(f"unlock {self.name}")

    def up(self, **kwargs: Any) -> None:
        self.events.append(f"up {self.name} {kwargs}" if kwargs else f"up {self.name}")

    def down(self) -> None:
        self.events.append(f"down {self.name}")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    recorded: list[str] = []
    kinds = {k: _Kind(recorded, k) for k in ("2205", "2605", "ge")}
    monkeypatch.setattr(cli, "KINDS", kinds)
    monkeypatch.setattr(cli, "slurm", kinds["2205"])
    return recorded


@pytest.mark.parametrize("argv", [["up", "--kind", "ge"], ["up-ge"]])
def test_both_spellings_bring_up_the_same_kind_under_its_lock(events: list[str], argv: list[str]) -> None:
    assert cli.main(argv) == 0
    assert events == ["lock ge", "up ge", "unlock ge"]


def test_up_without_a_kind_is_the_slurm_pair_and_without_2411_is_22_05_alone(events: list[str]) -> None:
    assert cli.main(["up"]) == 0 and cli.main(["up", "--without-2411"]) == 0
    assert [e for e in events if e.startswith("up")] == ["up 2205 {'with_2411': True}", "up 2205 {'with_2411': False}"]


def test_down_2605_takes_down_only_that_kind(events: list[str]) -> None:
    assert cli.main(["down-2605"]) == 0
    assert events == ["lock 2605", "down 2605", "unlock 2605"]


def test_status_takes_no_lock_and_exits_3_for_a_cluster_that_is_down(events: list[str], capsys: Any) -> None:
    cli.KINDS["ge"].is_alive = False  # type: ignore[attr-defined]  # the stand-in's switch
    assert cli.main(["status", "--kind", "ge"]) == 3
    assert cli.main(["status-2605"]) == 0
    assert events == []
    assert '"alive_ge": false' in capsys.readouterr().out


def test_a_slurm_only_verb_with_another_kind_is_refused_naming_it(events: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["scale-on", "--kind", "ge"])
    assert e.value.code == 2 and "--kind ge" in capsys.readouterr().err
    assert events == []
