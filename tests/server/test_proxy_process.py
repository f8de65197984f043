"""dssr-server runs the interactive-job proxy on JARVICE_DSSR_PROXY_LISTEN when JARVICE_JOBS_DOMAIN is set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core.test_usermap import entry, openssh_key, write
from tests.helpers import legacy_template, submit_args
from tests.server.live import Server, free_port, wait_for

KEY = "k" * 40


def slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A Slurm site whose login node is not there (start-up must not need it).  Its local settings are
    sound (a service key, a mapping file): since issue 21 a missing one stops start-up (tests/server/test_startup.py)."""
    mapping = write(tmp_path / "users.yaml", [entry("kirby@example.com", "kirby", openssh_key("ed25519"))])
    return {
        **os.environ,
        "JARVICE_SLURM_CLUSTER_ADDR": "127.0.0.1",
        "JARVICE_SLURM_CLUSTER_PORT": str(free_port()),
        "JARVICE_JWT_VERIFY": "false",
        "JARVICE_SLURM_COMMAND_TIMEOUT": "2",
        "JARVICE_SLURM_SSH_PKEY": openssh_key("ed25519"),
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping),
        **extra,
    }


def start(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dssr_server",
                "--connector",
                "slurm",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def request(port: int, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_the_server_runs_the_proxy_on_its_own_listener_and_stops_it_on_sigterm(tmp_path):
    port = free_port()
    env = slurm_env(
        tmp_path,
        JARVICE_JOBS_DOMAIN="jobs.example.org",
        JARVICE_DSSR_INTERACTIVE_KEY=KEY,
        JARVICE_DSSR_PROXY_LISTEN=f"127.0.0.1:{port}",
    )
    proc, log = start(env, tmp_path)
    try:
        wait_for(lambda: "interactive-job proxy listening" in log.read_text(), timeout=30)
        answer = request(port, "www.jobs.example.org")
        assert answer.startswith(b"HTTP/1.1 404 ") and answer.endswith(b"No running interactive job at this address.\n")
        assert "interactive jobs=https://<label>.jobs.example.org (host-based)" in log.read_text()
        assert KEY not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_without_a_domain_no_proxy_listens(tmp_path):
    port = free_port()
    proc, log = start(slurm_env(tmp_path, JARVICE_DSSR_PROXY_LISTEN=f"127.0.0.1:{port}"), tmp_path)
    try:
        wait_for(lambda: "dssr-server listening" in log.read_text(), timeout=30)
        time.sleep(0.5)
        assert "interactive jobs=off (JARVICE_JOBS_DOMAIN not set)" in log.read_text()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"JARVICE_DSSR_PROXY_LISTEN": "nowhere"}, "JARVICE_DSSR_PROXY_LISTEN='nowhere' is not host:port"),
        ({"JARVICE_JOBS_DOMAIN": "lookup/job$"}, "JARVICE_JOBS_DOMAIN='lookup/job$': 'lookup'"),
        ({"JARVICE_DSSR_INTERACTIVE_KEY": ""}, "JARVICE_DSSR_INTERACTIVE_KEY is not set"),
    ],
)
def test_a_bad_interactive_setting_stops_start_up_naming_it(tmp_path, extra, words):
    env = slurm_env(
        tmp_path, **{"JARVICE_JOBS_DOMAIN": "jobs.example.org", "JARVICE_DSSR_INTERACTIVE_KEY": KEY, **extra}
    )
    result = subprocess.run(
        [sys.executable, "-m", "dssr_server", "--connector", "slurm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and words in result.stderr, result.stderr


def test_a_proxy_address_in_use_stops_start_up_naming_the_variable(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = slurm_env(
            tmp_path,
            JARVICE_JOBS_DOMAIN="jobs.example.org",
            JARVICE_DSSR_INTERACTIVE_KEY=KEY,
            JARVICE_DSSR_PROXY_LISTEN=f"127.0.0.1:{port}",
        )
        result = subprocess.run(
            [sys.executable, "-m", "dssr_server", "--connector", "slurm", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2 and f"JARVICE_DSSR_PROXY_LISTEN: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_an_interactive_submission_to_a_server_without_jobs_domain_is_a_400_saying_what_to_set(tmp_path):
    live = Server(tmp_path / "state").start()
    try:
        template = legacy_template("sleep 1", extra={"JOBOBJ_INTERACTIVE": "True"})
        answer = live.post("/submit", submit_args("jarvice-kirby-77", 77, template, key="shell"))
        assert answer.status == 400
        error = answer.json()["error"]
        assert "set JARVICE_JOBS_DOMAIN" in error and "JARVICE_DSSR_INTERACTIVE_KEY" in error
        assert live.get("/running").json() == [] and live.get("/queued").json() == []
    finally:
        live.stop()
