"""dssr-server's one rule for start-up (issue 21): every setting it needs is checked before it listens;
a bad one is one line on stderr naming the variable, or the flag the user typed, and exit status 2
(the example systemd unit does not restart on 2).  No traceback, no secret.  What only the cluster
can tell (here: a Slurm login node that does not answer) is a warning, and /ready says 503."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.core.test_usermap import entry, openssh_key, write
from tests.server.live import Server, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
GARBAGE_KEY = base64.b64encode(b"this is not a private key at all").decode()


def run_server(*flags: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dssr_server", *flags],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def refused(result: subprocess.CompletedProcess[str], *secrets: str) -> list[str]:
    """The lines of a refused start-up, checked against the rule."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("dssr-server: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr and "listening on" not in result.stderr
    for secret in secrets:
        assert secret not in result.stderr
    return lines


def one_line(result: subprocess.CompletedProcess[str], *secrets: str) -> str:
    lines = refused(result, *secrets)
    assert len(lines) == 1, result.stderr
    return lines[0][len("dssr-server: ") :]


@pytest.mark.parametrize(
    "flags, env, line",
    [
        (
            ["--host", "999.1.1.1"],
            {},
            "--host='999.1.1.1' is not an IP address (IPv4: four numbers from 0 to 255; or IPv6).",
        ),
        (
            [],
            {"WAITRESS_BIND_ADDRESS": "999.1.1.1"},
            "WAITRESS_BIND_ADDRESS='999.1.1.1' is not an IP address (IPv4: four numbers from 0 to 255; or IPv6).",
        ),
        (
            [],
            {"WAITRESS_BIND_ADDRESS": "nosuch.invalid"},
            "WAITRESS_BIND_ADDRESS='nosuch.invalid' names no host: .invalid names never resolve (RFC 6761).",
        ),
        (
            ["--host", "127.0.0.1:5000"],
            {},
            "--host='127.0.0.1:5000' is not an address: give the port on its own (WAITRESS_PORT, --port).",
        ),
        (["--host", "local host"], {}, "--host='local host' is neither an IP address nor a host name."),
        (["--host", "1.2.3"], {}, "--host='1.2.3' is not an IP address (IPv4: four numbers from 0 to 255; or IPv6)."),
        (["--host", "::1::2"], {}, "--host='::1::2' is not an IP address (IPv4: four numbers from 0 to 255; or IPv6)."),
        (["--port", "abc"], {}, "--port='abc' is not an integer from 1 to 65535."),
        (["--port", "0"], {}, "--port='0' is out of range: use an integer from 1 to 65535."),
        ([], {"WAITRESS_PORT": "5000abc"}, "WAITRESS_PORT='5000abc' is not an integer from 1 to 65535."),
        (
            [],
            {"JARVICE_BAREMETAL_CONNECTOR": "pbs"},
            'JARVICE_BAREMETAL_CONNECTOR: No such connector "pbs". Available connectors: gridengine, local, slurm',
        ),
        (
            ["--connector", "pbs"],
            {"JARVICE_BAREMETAL_CONNECTOR": "local"},
            '--connector: No such connector "pbs". Available connectors: gridengine, local, slurm',
        ),
        (
            ["--connector", "local"],
            {"JARVICE_BAREMETAL_EXECUTOR": "docker"},
            'JARVICE_BAREMETAL_EXECUTOR: No such executor "docker". Available executors: apptainer, shell, singularity',
        ),
        (
            ["--connector", "local", "--executor", "docker"],
            {},
            '--executor: No such executor "docker". Available executors: apptainer, shell, singularity',
        ),
        (
            [],
            {"JARVICE_LOCAL_STATE_DIR": "/proc/dssr-no-such/state"},
            "JARVICE_LOCAL_STATE_DIR='/proc/dssr-no-such/state' cannot be created: No such file or directory.",
        ),
        (
            [],
            {"JARVICE_JOBS_DOMAIN": "jobs.example.org"},
            "JARVICE_DSSR_INTERACTIVE_KEY is not set: interactive jobs (JARVICE_JOBS_DOMAIN is set) need a secret of at "
            "least 32 characters, the same on every replica (e.g. openssl rand -hex 32).",
        ),
    ],
)
def test_a_bad_address_port_or_plugin_is_one_line_naming_what_the_user_set(
    tmp_path: Path, flags: list[str], env: dict[str, str], line: str
) -> None:
    assert one_line(run_server(*flags, env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path), **env})) == line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may listen below 1024")
def test_a_privileged_port_names_the_port(tmp_path: Path) -> None:
    line = one_line(run_server("--port", "80", env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path)}))
    assert line.startswith("--port=80: cannot listen on 127.0.0.1:80 (") and "need privileges" in line


def test_a_host_name_that_does_not_resolve_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver is a stand-in here (no name may be looked up off this machine)."""
    from dssr_core import ConfigError, Settings
    from dssr_server.settings import bind_address

    def no_such_name(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(ConfigError) as info:
        bind_address(Settings({"WAITRESS_BIND_ADDRESS": "dssr-nosuch-host.example"}))
    assert str(info.value) == (
        "WAITRESS_BIND_ADDRESS='dssr-nosuch-host.example' does not resolve to an address (Name or service not known)."
    )


def test_names_and_bracketed_addresses_that_are_fine_pass() -> None:
    from dssr_core import Settings
    from dssr_server.settings import bind_address

    for given, kept in (("localhost", "localhost"), ("[::1]", "::1"), ("0.0.0.0", "0.0.0.0"), ("::", "::")):
        assert bind_address(Settings({"WAITRESS_BIND_ADDRESS": given})) == kept
    assert bind_address(Settings({})) is None


def test_a_port_in_use_names_the_flag_and_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(run_server("--port", str(port), env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path)}))
        assert line.startswith(f"--port={port}: 127.0.0.1:{port} is in use by another process (")
        line = one_line(run_server(env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path), "WAITRESS_PORT": str(port)}))
        assert line.startswith(f"WAITRESS_PORT={port}: 127.0.0.1:{port} is in use by another process")


def test_an_address_that_is_not_this_hosts_names_the_flag(tmp_path: Path) -> None:
    """192.0.2.1 (TEST-NET-1) is on no interface: binding fails at once and sends nothing."""
    line = one_line(
        run_server("--host", "192.0.2.1", "--port", str(free_port()), env={"JARVICE_LOCAL_STATE_DIR": str(tmp_path)})
    )
    assert line.startswith("--host='192.0.2.1' is not an address of this host: cannot listen on 192.0.2.1:")


def closed_port() -> int:
    return free_port()  # nothing listens there: the "cluster" does not answer


def slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    mapping = write(tmp_path / "users.yaml", [entry("kirby@example.com", "kirby", openssh_key("ed25519"))])
    env = {
        "JARVICE_BAREMETAL_CONNECTOR": "slurm",
        "JARVICE_BAREMETAL_EXECUTOR": "singularity",
        "JARVICE_SLURM_CLUSTER_ADDR": "127.0.0.1",
        "JARVICE_SLURM_CLUSTER_PORT": str(closed_port()),
        "JARVICE_SLURM_SSH_PKEY": openssh_key("ed25519"),
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping),
        "JARVICE_JWT_PUBLIC_KEY": public,
        "JARVICE_JWT_ISSUER": "https://idp.example.org/realms/r",
        "JARVICE_JWT_AUDIENCE": "jarvice",
        "WAITRESS_BIND_ADDRESS": "127.0.0.1",
        "JARVICE_SLURM_SSH_HOST_KEY_RECORD": str(tmp_path / "host-keys"),
    }
    env.update(extra)
    return env


def public_key_line() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.mark.parametrize(
    "change, words",
    [
        (
            {"JARVICE_SLURM_SSH_PKEY": ""},
            "JARVICE_SLURM_SSH_PKEY (or JARVICE_SLURM_SSH_PKEY_FILE) is not set: give the service user's private key.",
        ),
        (
            {"JARVICE_SLURM_SSH_PKEY": GARBAGE_KEY},
            "JARVICE_SLURM_SSH_PKEY does not parse as an ed25519, RSA or ECDSA private key.",
        ),
        (
            {"JARVICE_SLURM_SSH_PKEY": "@@not base64@@"},
            "JARVICE_SLURM_SSH_PKEY is neither a PEM/OpenSSH private key nor base64 of one.",
        ),
        (
            {"JARVICE_SLURM_SSH_PKEY": "PUBLIC"},
            "JARVICE_SLURM_SSH_PKEY is a public key: give the private key (its public half goes in authorized_keys).",
        ),
        (
            {"JARVICE_USERS_ID_MAPPING_FILE": "/nonexistent/users.yaml"},
            "The user-id mapping file /nonexistent/users.yaml cannot be read (No such file or directory); "
            "set JARVICE_USERS_ID_MAPPING_FILE.",
        ),
        (
            {"JARVICE_USERS_ID_MAPPING_FILE": "MALFORMED"},
            "JARVICE_USERS_ID_MAPPING_FILE: The user-id mapping file {tmp}/bad.yaml is not valid YAML (line 3).",
        ),
        (
            {"JARVICE_USERS_ID_MAPPING_FILE": "EMPTY"},
            "JARVICE_USERS_ID_MAPPING_FILE: The user-id mapping file {tmp}/empty.yaml has no 'users_id_mapping' list.",
        ),
        (
            {"JARVICE_USERS_ID_MAPPING_FILE": "NOBODY"},
            "JARVICE_USERS_ID_MAPPING_FILE='{tmp}/nobody.yaml' maps nobody: add users_id_mapping entries "
            "(mail, mapped_user, ssh_private_key_b64)",
        ),
        (
            {"JARVICE_SLURM_SSH_KNOWN_HOSTS": "/nonexistent/known_hosts"},
            "JARVICE_SLURM_SSH_KNOWN_HOSTS='/nonexistent/known_hosts' cannot be read (No such file or directory).",
        ),
        (
            {"JARVICE_SLURM_SSH_KNOWN_HOSTS": "OTHER_HOSTS"},
            "JARVICE_SLURM_SSH_KNOWN_HOSTS='{tmp}/known_hosts' has no key of 127.0.0.1:{port}: add it "
            "(ssh-keyscan -p {port} 127.0.0.1, checked with the cluster's administrators).",
        ),
        (
            {"JARVICE_SLURM_SSH_HOST_KEY": "aa:bb:cc"},
            "JARVICE_SLURM_SSH_HOST_KEY='aa:bb:cc' is not of the form SHA256:<base64> (as printed by ssh-keygen -lf).",
        ),
        ({"JARVICE_SLURM_INTERFACE": "ssh"}, "JARVICE_SLURM_INTERFACE='ssh' is not allowed: use one of cli, http."),
        (
            {"JARVICE_JWT_PUBLIC_KEY": "not a key"},
            "JARVICE_JWT_PUBLIC_KEY is neither PEM text nor a readable file path.",
        ),
        (
            {"JARVICE_JWT_PUBLIC_KEY": ""},
            "Bearer-token verification is on (JARVICE_JWT_VERIFY=true) but no key is configured: "
            "set JARVICE_JWT_PUBLIC_KEY or JARVICE_JWT_JWKS_URL, or JARVICE_JWT_VERIFY=false.",
        ),
        (
            {"JARVICE_SLURM_SSH_PKEY_FILE": "/nonexistent/key", "JARVICE_SLURM_SSH_PKEY": ""},
            "JARVICE_SLURM_SSH_PKEY_FILE='/nonexistent/key' cannot be read (No such file or directory).",
        ),
        (
            {"JARVICE_SLURM_SSH_PKEY_FILE": "FOLDER", "JARVICE_SLURM_SSH_PKEY": ""},
            "JARVICE_SLURM_SSH_PKEY_FILE='{tmp}/folder' cannot be read (Is a directory).",
        ),
        (
            {"JARVICE_USERS_ID_MAPPING_FILE": "FOLDER"},
            "JARVICE_USERS_ID_MAPPING_FILE: The user-id mapping file {tmp}/folder cannot be read (Is a directory).",
        ),
        (
            {"JARVICE_SLURM_SSH_KNOWN_HOSTS": "FOLDER"},
            "JARVICE_SLURM_SSH_KNOWN_HOSTS='{tmp}/folder' cannot be read (Is a directory).",
        ),
    ],
)
def test_a_local_fault_of_the_slurm_settings_stops_start_up_naming_the_variable(
    tmp_path: Path, change: dict[str, str], words: str
) -> None:
    (tmp_path / "bad.yaml").write_text("users_id_mapping:\n  - mail: [unclosed\n")
    (tmp_path / "empty.yaml").write_text("")
    write(tmp_path / "nobody.yaml", [{"mail": "kirby@example.com", "mapped_user": "kirby"}])
    (tmp_path / "known_hosts").write_text(f"[login.example.org]:22 {public_key_line()}\n")  # another host's
    (tmp_path / "folder").mkdir()
    files = {
        "MALFORMED": "bad.yaml",
        "EMPTY": "empty.yaml",
        "NOBODY": "nobody.yaml",
        "OTHER_HOSTS": "known_hosts",
        "FOLDER": "folder",
    }
    change = {
        k: str(tmp_path / files[v]) if v in files else public_key_line() if v == "PUBLIC" else v
        for k, v in change.items()
    }
    env = slurm_env(tmp_path, **change)
    result = run_server("--port", str(free_port()), env=env)
    expected = words.format(tmp=tmp_path, port=env["JARVICE_SLURM_CLUSTER_PORT"])
    assert one_line(result, env["JARVICE_SLURM_SSH_PKEY"] or "-----BEGIN", GARBAGE_KEY) == expected


def test_each_local_fault_is_its_own_line(tmp_path: Path) -> None:
    env = slurm_env(tmp_path, JARVICE_SLURM_SSH_PKEY=GARBAGE_KEY, JARVICE_USERS_ID_MAPPING_FILE="/nonexistent/u.yaml")
    lines = refused(run_server("--port", str(free_port()), env=env), GARBAGE_KEY)
    assert [line.split(" ")[1] for line in lines] == ["JARVICE_SLURM_SSH_PKEY", "The"]
    assert "JARVICE_USERS_ID_MAPPING_FILE" in lines[1]


def test_what_only_the_cluster_can_tell_is_a_warning_and_ready_says_503(tmp_path: Path) -> None:
    """Good local settings, a login node that does not answer, one bad entry of the mapping file, a
    JWKS address nothing answers at: the server serves, warns, and /ready says 503 until the cluster answers."""
    mapping = write(
        tmp_path / "two.yaml",
        [entry("kirby@example.com", "kirby", openssh_key("ed25519")), entry("mario@example.com", "mario", "not a key")],
    )
    env = slurm_env(
        tmp_path,
        JARVICE_USERS_ID_MAPPING_FILE=str(mapping),
        JARVICE_JWT_PUBLIC_KEY="",
        JARVICE_JWT_JWKS_URL=f"http://127.0.0.1:{closed_port()}/certs",
    )  # no key server there
    server = Server(tmp_path / "state", env=env, flags=[]).start()
    try:
        answer = wait_for(lambda: (a := server.get("/ready")).status == 503 and a, timeout=20)
        assert answer.json()["status"] == "BAD"
        log = server.log()
        assert "WARNING" in log and "start-up check" in log and "mario@example.com" in log
    finally:
        assert server.stop() == 0


def test_the_example_systemd_unit_does_not_restart_on_a_bad_setting() -> None:
    unit = (ROOT / "examples" / "dssr-server.service").read_text().splitlines()
    assert "Restart=on-failure" in unit and "RestartPreventExitStatus=2" in unit


def test_the_version_is_in_the_start_up_report_and_in_dssr_server_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    installed = version("jarvice-dssr")
    result = subprocess.run(
        [sys.executable, "-m", "dssr_server", "--version"], capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout.strip()) == (0, f"dssr-server (jarvice-dssr) {installed}")
    server = Server(tmp_path / "state").start()
    try:
        report = [line for line in server.log().splitlines() if "listening on" in line]
        assert len(report) == 1 and f"dssr-server listening on {server.url} (" in report[0]
        assert report[0].endswith(f"; jarvice-dssr {installed})")
    finally:
        server.stop()
