"""``dssr doctor`` on the local connector, and the line format every check is printed in."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from dssr_core import Check, Settings, load_executor
from dssr_core.cli import main


def doctor(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    rc = main(["doctor", *args], out=out, settings=Settings(env))
    return rc, out.getvalue().splitlines()


def test_a_check_is_one_line_ok_or_fail_what_and_why() -> None:
    assert Check("squeue answers", True).line() == "OK squeue answers"
    assert Check("sacct answers", False, "slurmdbd is down").line() == "FAIL sacct answers — slurmdbd is down"
    assert (
        Check("the trial job starts", True, "on node1", 1.234).line() == "OK the trial job starts (1.23 s) — on node1"
    )


def test_the_local_site_passes_and_a_trial_job_runs_with_each_stage_timed(tmp_path: Path) -> None:
    env = {
        "JARVICE_BAREMETAL_CONNECTOR": "local",
        "JARVICE_BAREMETAL_EXECUTOR": "shell",
        "JARVICE_LOCAL_STATE_DIR": str(tmp_path),
    }
    rc, lines = doctor(env, "--submit", "someone@example.com", "--timeout", "60")
    assert rc == 0, lines
    assert lines[0] == "OK settings parse — connector local, executor shell"
    assert "OK the local cluster answers" in lines
    stages = [x for x in lines if "trial job" in x]
    assert [x.split(" (")[0] for x in stages] == [
        "OK a trial job is submitted as someone@example.com",
        "OK the trial job starts",
        "OK the trial job runs to its end",
        "OK the trial job's exit status is read",
        "OK the trial job's files are removed",
        "OK the trial job, end to end",
    ]
    assert all(" s)" in x for x in stages)


def test_a_bad_setting_is_one_fail_line_and_exit_status_1(tmp_path: Path) -> None:
    rc, lines = doctor({"JARVICE_BAREMETAL_CONNECTOR": "pbs", "JARVICE_LOCAL_STATE_DIR": str(tmp_path)})
    assert rc == 1
    # issue 21: the line names the variable that chose the connector
    assert len(lines) == 1 and lines[0] == (
        'FAIL settings parse — JARVICE_BAREMETAL_CONNECTOR: No such connector "pbs". Available connectors: gridengine, local, slurm'
    )


# -- issue 21: the doctor resolves plugins as dssr-server does, and reports every local fault ----------------
def slurm_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from tests.server.test_startup import slurm_env as env

    return {k: v for k, v in env(tmp_path, **extra).items() if k != "JARVICE_BAREMETAL_EXECUTOR"}


@pytest.mark.parametrize(
    "flags, env",
    [
        (["--connector", "slurm"], {}),
        (["--connector", "slurm"], {"JARVICE_BAREMETAL_EXECUTOR": "shell"}),
        (["--connector", "local"], {"JARVICE_BAREMETAL_CONNECTOR": "slurm"}),
        ([], {"JARVICE_BAREMETAL_CONNECTOR": "slurm"}),
        (["--executor", "apptainer"], {"JARVICE_BAREMETAL_CONNECTOR": "slurm"}),
        ([], {}),
    ],
)
def test_the_doctor_loads_the_connector_and_executor_dssr_server_would(
    tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    from dssr_server.__main__ import parse_args, settings_from
    from dssr_server.settings import ServerSettings

    base = {**slurm_env(tmp_path), **env, "JARVICE_LOCAL_STATE_DIR": str(tmp_path / "state")}
    base.setdefault("JARVICE_BAREMETAL_CONNECTOR", "local")
    server = ServerSettings.from_settings(settings_from(parse_args(flags), Settings(base)))
    executor = load_executor(server.executor, Settings(base)).name  # apptainer is the singularity executor
    out = io.StringIO()
    main([*flags, "doctor"], out=out, settings=Settings(base))
    assert f"OK settings parse — connector {server.connector}, executor {executor}" in out.getvalue()


def test_dssr_connector_slurm_doctor_checks_the_executor_a_slurm_server_runs(tmp_path: Path) -> None:
    out = io.StringIO()
    main(["--connector", "slurm", "doctor"], out=out, settings=Settings(slurm_env(tmp_path)))
    assert out.getvalue().splitlines()[0] == "OK settings parse — connector slurm, executor singularity"


def test_a_bad_flag_is_named_by_the_flag(tmp_path: Path) -> None:
    out = io.StringIO()
    rc = main(
        ["--connector", "local", "--executor", "docker", "doctor"],
        out=out,
        settings=Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path)}),
    )
    assert rc == 1 and out.getvalue().splitlines() == [
        'FAIL settings parse — --executor: No such executor "docker". Available executors: apptainer, shell, singularity'
    ]


def test_every_local_fault_is_its_own_line_though_the_cluster_does_not_answer(tmp_path: Path) -> None:
    from tests.server.test_startup import GARBAGE_KEY

    rc, lines = doctor(
        slurm_env(
            tmp_path, JARVICE_SLURM_SSH_PKEY=GARBAGE_KEY, JARVICE_USERS_ID_MAPPING_FILE=str(tmp_path / "missing.yaml")
        )
    )
    assert rc == 1
    assert lines[0] == "OK settings parse — connector slurm, executor singularity"
    assert lines[1] == (
        "FAIL the service user's key (JARVICE_SLURM_SSH_PKEY) loads — JARVICE_SLURM_SSH_PKEY does "
        "not parse as an ed25519, RSA or ECDSA private key."
    )
    assert lines[2].startswith(f"FAIL the user-id mapping file {tmp_path}/missing.yaml loads — ")
    assert "set JARVICE_USERS_ID_MAPPING_FILE" in lines[2]
    assert lines[3].startswith("FAIL SSH reaches 127.0.0.1:") and "Cannot reach" in lines[3]
    assert GARBAGE_KEY not in "\n".join(lines)


def test_good_local_settings_pass_before_the_cluster_checks_and_a_bad_entry_is_named(tmp_path: Path) -> None:
    from tests.core.test_usermap import entry, openssh_key, write

    mapping = write(
        tmp_path / "two.yaml",
        [entry("kirby@example.com", "kirby", openssh_key("ed25519")), entry("mario@example.com", "mario", "not a key")],
    )
    rc, lines = doctor(slurm_env(tmp_path, JARVICE_USERS_ID_MAPPING_FILE=str(mapping)))
    assert rc == 1
    assert lines[1] == "OK the service user's key (JARVICE_SLURM_SSH_PKEY) loads — ssh-ed25519"
    assert lines[2] == (
        "FAIL an entry of the user-id mapping file — "
        f"{mapping}: the ssh_private_key_b64 of "
        "mario@example.com does not parse as an ed25519, RSA or ECDSA private key."
    )
    assert lines[3] == f"OK the user-id mapping file {mapping} loads — 1 user(s)"
    assert lines[4].startswith("FAIL SSH reaches 127.0.0.1:")


def test_beside_the_readmes_try_it_server_the_doctor_says_the_server_holds_the_state_folder(tmp_path: Path) -> None:
    from tests.server.live import Server

    state = tmp_path / "state"
    server = Server(state).start()
    try:
        rc, lines = doctor({"JARVICE_LOCAL_STATE_DIR": str(state)})
    finally:
        server.stop()
    assert rc == 0, lines
    assert lines[0] == "OK settings parse — connector local, executor shell"  # the CLI works beside its server
    assert not [x for x in lines if "FAIL" in x]


def unreadable_key_lines(tmp_path: Path, key_file: Path, **extra: str) -> tuple[int, list[str]]:
    return doctor(slurm_env(tmp_path, JARVICE_SLURM_SSH_PKEY="", JARVICE_SLURM_SSH_PKEY_FILE=str(key_file), **extra))


@pytest.mark.parametrize("kind, why", [("directory", "Is a directory"), ("missing", "No such file or directory")])
def test_an_unreadable_key_file_is_its_own_line_and_the_other_local_checks_still_run(
    tmp_path: Path, kind: str, why: str
) -> None:
    key_file = tmp_path / "key"
    if kind == "directory":
        key_file.mkdir()
    rc, lines = unreadable_key_lines(
        tmp_path,
        key_file,
        JARVICE_USERS_ID_MAPPING_FILE=str(tmp_path / "none.yaml"),
        JARVICE_SLURM_SSH_KNOWN_HOSTS=str(tmp_path / "no_known_hosts"),
    )
    assert rc == 1
    assert lines[0] == "OK settings parse — connector slurm, executor singularity"
    assert lines[1] == (
        f"FAIL the service user's key (JARVICE_SLURM_SSH_PKEY_FILE) loads — "
        f"JARVICE_SLURM_SSH_PKEY_FILE='{key_file}' cannot be read ({why})."
    )
    assert lines[2] == (
        "FAIL the login node's host key is pinned — JARVICE_SLURM_SSH_KNOWN_HOSTS="
        f"'{tmp_path}/no_known_hosts' cannot be read (No such file or directory)."
    )
    assert lines[3].startswith(f"FAIL the user-id mapping file {tmp_path}/none.yaml loads — ")
    assert "JARVICE_USERS_ID_MAPPING_FILE" in lines[3]
    assert lines[4].startswith("FAIL SSH reaches 127.0.0.1:")  # the cluster checks still run after them


def test_both_key_variables_set_is_the_keys_own_line(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("whatever")
    rc, lines = doctor(slurm_env(tmp_path, JARVICE_SLURM_SSH_PKEY_FILE=str(tmp_path / "key")))
    assert rc == 1 and lines[0].startswith("OK settings parse")
    assert lines[1] == (
        "FAIL the service user's key (JARVICE_SLURM_SSH_PKEY_FILE) loads — "
        "JARVICE_SLURM_SSH_PKEY and JARVICE_SLURM_SSH_PKEY_FILE are both set: give only one."
    )
    assert lines[2].startswith("OK the user-id mapping file ")


def test_a_malformed_host_key_fingerprint_is_its_own_line(tmp_path: Path) -> None:
    rc, lines = doctor(slurm_env(tmp_path, JARVICE_SLURM_SSH_HOST_KEY="aa:bb"))
    assert rc == 1 and lines[0].startswith("OK settings parse") and lines[1].startswith("OK the service user's key")
    assert lines[2] == (
        "FAIL the login node's host key is pinned — JARVICE_SLURM_SSH_HOST_KEY='aa:bb' is not of the "
        "form SHA256:<base64> (as printed by ssh-keygen -lf)."
    )
    assert lines[3].startswith("OK the user-id mapping file ")


def test_a_key_file_of_mode_000_read_by_another_user_is_its_own_line(tmp_path: Path) -> None:
    """The file exists but this user may not read it: as root (who reads anything) the doctor runs in a
    forked child that dropped to the unprivileged ``nobody`` first."""
    import os
    import pwd
    import tempfile

    from tests.core.test_usermap import openssh_key

    folder = Path(tempfile.mkdtemp(prefix="dssr-doctor-"))  # pytest's own folders are 0700: nobody could not look in
    folder.chmod(0o755)
    key_file = folder / "key"
    key_file.write_text(openssh_key("ed25519"))
    env = slurm_env(tmp_path, JARVICE_SLURM_SSH_PKEY="", JARVICE_SLURM_SSH_PKEY_FILE=str(key_file))
    rc, lines = doctor(env)  # readable: it loads (and every module the doctor needs is now imported)
    assert lines[1] == "OK the service user's key (JARVICE_SLURM_SSH_PKEY_FILE) loads — ssh-ed25519"
    key_file.chmod(0)
    if os.geteuid() != 0:
        rc, lines = doctor(env)
    else:
        nobody = pwd.getpwnam("nobody")
        # the installed plugins as root reads them: from a checkout nobody may enter (a 0700 folder), the
        # child could not read the environment's package metadata, and would find no connector at all
        from dssr_core import _plugins

        installed = {
            group: _plugins._installed(group) for group in (_plugins.CONNECTORS_GROUP, _plugins.EXECUTORS_GROUP)
        }
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            try:
                _plugins._installed = installed.__getitem__  # type: ignore[assignment]  # read above, as root
                os.close(reader)
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                seen = os.path.isfile(key_file)  # it sees the file: only reading it is refused
                code, got = doctor(env)
                os.write(writer, "\n".join([str(code) if seen else "unseen", *got]).encode())
            finally:
                os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as pipe:
            said = pipe.read().splitlines()
        os.waitpid(child, 0)
        assert said and said[0] != "unseen", said
        rc, lines = int(said[0]), said[1:]
    shutil.rmtree(folder)
    assert rc == 1 and lines[0].startswith("OK settings parse")
    assert lines[1] == (
        f"FAIL the service user's key (JARVICE_SLURM_SSH_PKEY_FILE) loads — "
        f"JARVICE_SLURM_SSH_PKEY_FILE='{key_file}' cannot be read (Permission denied)."
    )
