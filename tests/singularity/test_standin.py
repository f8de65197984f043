"""The Apptainer stand-in refuses what real Apptainer refuses (so the executor's calls are really checked)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .helpers import STANDIN

IMAGE_OK = "# DSSR APPTAINER STAND-IN IMAGE (not a SIF file; no container in it)\nsource: docker://x\n"


def standin(tmp_path: Path, *argv: str, env: dict[str, str] | None = None, prog: str = "apptainer"):
    link = tmp_path / prog
    if not link.exists():
        link.symlink_to(STANDIN)
    full_env = {"PATH": "/usr/bin:/bin", "DSSR_STANDIN_PULL_SECONDS": "0", **(env or {})}
    return subprocess.run([str(link), *argv], cwd=tmp_path, env=full_env, capture_output=True, text=True)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.sif"
    path.write_text(IMAGE_OK)
    return str(path)


def test_its_first_lines_say_it_is_a_test_standin_and_not_apptainer():
    head = STANDIN.read_text().splitlines()[1]
    assert "TEST STAND-IN" in head and "NOT APPTAINER" in head and os.access(STANDIN, os.X_OK)


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "--bogus", "IMG", "true"],
        ["exec", "--pwd"],
        ["exec", "--overlay", "OVL", "--writable-tmpfs", "IMG", "true"],
        ["exec", "--overlay", "/nonexistent.img", "IMG", "true"],
        ["exec", "/nonexistent.sif", "true"],
        ["exec", "-B", "relative/path", "IMG", "true"],
        ["exec", "-B", "/a:/b:maybe", "IMG", "true"],
        ["exec", "IMG"],
        ["pull", "only-one-argument"],
        ["pull", "dest.sif", "no-transport"],
        ["overlay", "create", "--size", "x", "o.img"],
        ["overlay", "resize", "o.img"],
        ["exec", "-v", "IMG", "true"],
        ["shell", "IMG"],
    ],
)
def test_a_call_outside_apptainers_command_line_exits_255(tmp_path, image, argv):
    (tmp_path / "OVL").write_text("")
    argv = [image if a == "IMG" else str(tmp_path / "OVL") if a == "OVL" else a for a in argv]
    result = standin(tmp_path, *argv)
    assert result.returncode == 255 and "FATAL" in result.stderr


def test_exec_runs_the_command_with_its_exit_code_env_and_working_directory(tmp_path, image):
    work = tmp_path / "work"
    work.mkdir()
    result = standin(
        tmp_path,
        "-s",
        "exec",
        "-B",
        f"{tmp_path}:/x:ro,{work}",
        "--writable-tmpfs",
        "--pwd",
        str(work),
        "--env",
        "B=2",
        image,
        "/bin/sh",
        "-c",
        'echo "$A $B $(pwd)"; exit 7',
        env={"APPTAINERENV_A": "1"},
    )
    assert result.returncode == 7
    assert result.stdout.strip() == f"1 2 {work}"


def test_pull_writes_a_standin_image_and_refuses_to_overwrite(tmp_path):
    assert standin(tmp_path, "pull", "a.sif", "docker://ubuntu").returncode == 0
    assert (tmp_path / "a.sif").read_text().startswith("# DSSR APPTAINER STAND-IN IMAGE")
    assert standin(tmp_path, "pull", "a.sif", "docker://ubuntu").returncode == 255


def test_calls_are_recorded_with_credential_names_but_never_their_values(tmp_path):
    env = {
        "APPTAINER_DOCKER_USERNAME": "u",
        "APPTAINER_DOCKER_PASSWORD": "pw-S3cret",
        "PROCESS_PROCID": "1",
        "DSSR_STANDIN_LOG": str(tmp_path / "global.jsonl"),
    }
    standin(tmp_path, "-v", "pull", "p.sif", "docker://private/app", env=env)
    for log in (tmp_path / ".standin-calls.jsonl", tmp_path / "global.jsonl"):
        text = log.read_text()
        assert "pw-S3cret" not in text
        call = json.loads(text)
        assert call["argv"] == ["-v", "pull", "p.sif", "docker://private/app"] and call["procid"] == "1"
        assert call["credentials"] == ["APPTAINER_DOCKER_PASSWORD", "APPTAINER_DOCKER_USERNAME"]


def test_called_as_singularity_it_records_its_name(tmp_path):
    assert standin(tmp_path, "version", prog="singularity").returncode == 0
    assert json.loads((tmp_path / ".standin-calls.jsonl").read_text())["prog"] == "singularity"
