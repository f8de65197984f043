"""The distribution as a site gets it: an sdist holding what the README links to, that builds a working wheel."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import dssr_core

ROOT = Path(__file__).resolve().parents[2]


def readme_paths() -> set[str]:
    """Every file or folder of the checkout the README names: its links and its `backticked/paths`."""
    text = (ROOT / "README.md").read_text()
    found = set(re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text))
    found |= {m for m in re.findall(r"`([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*)`", text) if (ROOT / m.rstrip("/")).exists()}
    found |= {m for m in re.findall(r"`([A-Za-z]+file|LICENSE)`", text) if (ROOT / m).exists()}
    found |= set(re.findall(r"^bash ([\w./-]+)", text, re.M))
    return {path.rstrip("/") for path in found}


def checkout_copy(target: Path) -> Path:
    """The files git knows (committed or not), without anything an earlier build left behind."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    for name in files:
        if name and not name.startswith(".venv/") and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes((ROOT / name).read_bytes())
            (target / name).chmod((ROOT / name).stat().st_mode)
    return target


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / ".git").exists():  # an unpacked sdist is its own source: build from it as it is
        source = ROOT
    else:
        source = checkout_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (archive,) = out.glob("jarvice_dssr-*.tar.gz")
    return archive


def test_the_readme_names_the_docs_examples_and_test_command() -> None:
    paths = readme_paths()
    assert {"docs/api.md", "docs/deploy.md", "tests/run.sh", "examples/launch-slurm.sh", "LICENSE"} <= paths


def test_the_sdist_holds_every_file_the_readme_links_to_and_the_license(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        top = next(iter(archive.getnames())).split("/")[0]
        license_text = archive.extractfile(f"{top}/LICENSE").read().decode()  # type: ignore[union-attr]  # LICENSE is a regular file: it has a reader
    missing = {path for path in readme_paths() if path not in names}
    assert missing == set()
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text


def test_a_wheel_built_from_the_sdist_works(sdist: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as archive:
        # the archive is our own; the "data" filter where this Python has it (3.11.4+, 3.10.12+)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path / "unpacked", **safe)  # type: ignore[arg-type]  # the filter argument, where this Python has it
    (source,) = (tmp_path / "unpacked").iterdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("jarvice_dssr-*.whl")
    installed = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        shipped = archive.namelist()
    assert f"Version: {dssr_core.__version__}" in metadata
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in shipped)
    urls = re.findall(r"^Project-URL: [^,]+, (\S+)$", metadata, re.M)
    assert urls and all(url.startswith("https://") for url in urls)
    # imported from the unpacked wheel (first on the path), not from the checkout
    code = (
        "import dssr_core, dssr_server.app, dssr_local.connector, dssr_slurm.connector, dssr_slurm.rest, "
        "dssr_singularity.executor, importlib.resources as r; "
        "print(dssr_core.__file__); print(dssr_core.__version__); "
        "print(len(r.files('dssr_server').joinpath('openapi.json').read_text()) > 100)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    where, version, openapi = result.stdout.split()
    assert where.startswith(str(installed)) and version == dssr_core.__version__ and openapi == "True"
    result = subprocess.run(
        [sys.executable, "-m", "dssr_core.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.stdout == f"dssr (jarvice-dssr) {dssr_core.__version__}\n"
