"""The shell executor: node scripts that are valid bash, quote everything, and run legacy templates."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dssr_core import BadRequest, JobRef, JobSpec, JobState, LaunchContext
from dssr_core._upstream import parse_template
from dssr_local.connector import LocalConnector
from dssr_local.shell import ShellExecutor

from ..helpers import legacy_template
from .jobs import wait_end

CTX = LaunchContext(
    scratch_root="/var/lib/dssr",
    cluster_user="kirby",
    user_scratch="/data",
    job_dir="/var/lib/dssr/jobs/7",
    secrets_file="/var/lib/dssr/jobs/7/.secrets.env",
)


def check_bash(script: str, tmp_path: Path) -> None:
    path = tmp_path / "node.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", str(path)], check=True)


def template_spec(command: str, **extra: str) -> JobSpec:
    return parse_template(legacy_template(command, extra=extra), 1, "tmpl", 3)


def test_native_script_is_valid_bash(shell: ShellExecutor, tmp_path: Path) -> None:
    spec = JobSpec(name="n", command="echo 'hi' && ls \"$HOME\"", environment={"A": "x y", "B": "$(id)"})
    check_bash(shell.launch(spec, CTX).node_script, tmp_path)


def test_native_environment_names_must_be_identifiers(shell: ShellExecutor) -> None:
    with pytest.raises(BadRequest, match="not a valid shell variable name"):
        shell.launch(JobSpec(name="n", command="true", environment={"A;rm -rf /": "x"}), CTX)


def test_native_command_cannot_break_out_of_its_quoting(shell: ShellExecutor, tmp_path: Path) -> None:
    spec = JobSpec(name="n", command="echo one'; echo two", environment={})
    script = shell.launch(spec, CTX).node_script
    # the command is one argument of bash -c: its own syntax error, never a second line of the node script
    assert script.count("\n") == 4
    check_bash(script, tmp_path)


def test_template_script_is_filled_and_valid_bash(shell: ShellExecutor, tmp_path: Path) -> None:
    launch = shell.launch(template_spec("echo from-template"), CTX)
    assert "{DOWNSTREAM_PARAMETERS}" not in launch.node_script
    assert "export JARVICE_CMD='echo from-template'" in launch.node_script
    assert "export JOB_LOCAL_USER=kirby" in launch.node_script
    assert launch.success_marker == "JARVICE_CMD_SUCCESS"
    check_bash(launch.node_script, tmp_path)


def test_template_credentials_are_not_in_the_script(shell: ShellExecutor) -> None:
    auth = base64.b64encode(b"kirby:registry-pass").decode()
    ctrsecret = base64.b64encode(json.dumps({"auths": {"docker.io": {"auth": auth}}}).encode()).decode()
    docker = json.dumps({"server": "docker.io", "username": "kirby", "password": "app-pass"})
    spec = template_spec("true", JOBOBJ_CTRSECRET=ctrsecret, JOBOBJ_DOCKER_SECRET=docker)
    script = shell.launch(spec, CTX).node_script
    for secret in (ctrsecret, auth, "app-pass"):
        assert secret not in script


def test_legacy_template_submission_runs_the_filled_template(
    connector: LocalConnector, shell: ShellExecutor, state_dir: Path
) -> None:
    spec = template_spec('echo "cmd=$JARVICE_CMD user=$JOB_LOCAL_USER rank=$PROCESS_PROCID"')
    submission = connector.submit(spec, shell)
    ref = JobRef(spec.name, spec.number, submission.jobid)
    end = wait_end(connector, ref)
    assert end.state is JobState.COMPLETED
    assert f"user={connector.user} rank=0" in end.output
    assert "JARVICE_CMD_SUCCESS" in end.output


def test_failing_template_command_fails_the_job(connector: LocalConnector, shell: ShellExecutor) -> None:
    spec = template_spec("exit 5")
    ref = JobRef(spec.name, spec.number, connector.submit(spec, shell).jobid)
    end = wait_end(connector, ref)
    assert (end.state, end.rc) == (JobState.FAILED, 1)
