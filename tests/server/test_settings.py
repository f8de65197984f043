"""dssr-server's own settings (dssr_server.ServerSettings): the first implementation's names, errors naming them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dssr_core import ConfigError, Downstream, Settings
from dssr_server import ServerSettings, create_app
from tests.helpers import legacy_template, submit_args


def test_without_settings_the_server_is_the_local_connector_and_shell_on_loopback() -> None:
    server = ServerSettings.from_settings(Settings({}))
    assert (server.connector, server.executor, server.log_level, server.port, server.host) == (
        "local",
        "shell",
        20,
        5000,
        "127.0.0.1",
    )
    assert (server.threads, server.script_key, server.log_format, server.ready_max_age) == (8, None, "text", 60.0)


def test_a_site_naming_slurm_gets_singularity_on_every_address_as_the_first_implementation() -> None:
    server = ServerSettings.from_settings(Settings({"JARVICE_BAREMETAL_CONNECTOR": "slurm"}))
    assert (server.connector, server.executor, server.host) == ("slurm", "singularity", "0.0.0.0")


@pytest.mark.parametrize(
    "env, host",
    [
        ({"JARVICE_BAREMETAL_EXECUTOR": "singularity"}, "0.0.0.0"),
        ({"JARVICE_BAREMETAL_CONNECTOR": "local", "JARVICE_BAREMETAL_EXECUTOR": "shell"}, "127.0.0.1"),
        ({"WAITRESS_BIND_ADDRESS": "0.0.0.0"}, "0.0.0.0"),
        ({"WAITRESS_BIND_ADDRESS": "192.0.2.7"}, "192.0.2.7"),
    ],
)
def test_the_shell_executor_on_the_local_connector_listens_on_loopback_unless_an_address_is_given(
    env: dict[str, str], host: str
) -> None:
    assert ServerSettings.from_settings(Settings(env)).host == host


def test_server_settings_read_the_legacy_variable_names() -> None:
    server = ServerSettings.from_settings(
        Settings(
            {
                "JARVICE_BAREMETAL_CONNECTOR": "local",
                "JARVICE_BAREMETAL_EXECUTOR": "shell",
                "JARVICE_SCHED_LOGLEVEL": "10",
                "WAITRESS_PORT": "8080",
                "WAITRESS_BIND_ADDRESS": "127.0.0.1",
                "WAITRESS_THREADS": "4",
                "JARVICE_UPSTREAM_SCRIPT_KEY": "apptainer",
                "JARVICE_DSSR_LOG_FORMAT": "json",
                "JARVICE_DSSR_READY_MAX_AGE": "30",
            }
        )
    )
    assert dataclasses.asdict(server) == {
        "connector": "local",
        "executor": "shell",
        "log_level": 10,
        "port": 8080,
        "host": "127.0.0.1",
        "threads": 4,
        "script_key": "apptainer",
        "log_format": "json",
        "ready_max_age": 30.0,
    }


def test_server_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServerSettings.from_settings(Settings({})).port = 1  # type: ignore[misc]  # the write a frozen dataclass refuses, on purpose


@pytest.mark.parametrize(
    "variable, value, allowed",
    [
        ("WAITRESS_PORT", "http", "not an integer from 1 to 65535"),
        ("WAITRESS_PORT", "70000", "out of range: use an integer from 1 to 65535"),
        ("JARVICE_SCHED_LOGLEVEL", "DEBUG", "not an integer from 0 to 50"),
        ("JARVICE_SCHED_LOGLEVEL", "99", "out of range"),
        ("WAITRESS_THREADS", "0", "out of range"),
        ("JARVICE_DSSR_LOG_FORMAT", "xml", "not allowed: use one of text, json"),
        ("JARVICE_DSSR_READY_MAX_AGE", "soon", "not a number"),
        ("JARVICE_DSSR_READY_MAX_AGE", "0.5", "out of range: use a number >= 1.0"),
    ],
)
def test_a_bad_server_setting_names_the_variable_and_what_is_allowed(variable: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerSettings.from_settings(Settings({variable: value}))
    message = str(info.value)
    assert message.startswith(f"{variable}={value!r}") and allowed in message and "\n" not in message


@pytest.mark.parametrize(
    "env, key",
    [
        ({"JARVICE_BAREMETAL_EXECUTOR": "apptainer"}, "apptainer"),  # an alias of the singularity executor
        ({"JARVICE_BAREMETAL_EXECUTOR": "shell"}, "shell"),
        ({"JARVICE_BAREMETAL_EXECUTOR": "shell", "JARVICE_UPSTREAM_SCRIPT_KEY": "singularity"}, "singularity"),
    ],
)
def test_submit_reads_the_hpc_script_entry_named_like_the_configured_executor_or_the_script_key(
    tmp_path: Path, env: dict[str, str], key: str
) -> None:
    settings = Settings({"JARVICE_LOCAL_STATE_DIR": str(tmp_path), "JARVICE_BAREMETAL_CONNECTOR": "local", **env})
    downstream = Downstream.from_settings(settings)
    try:
        client = create_app(downstream, settings).test_client()
        # appdef 1 is refused once the template is found: nothing is submitted either way
        args = submit_args("jarvice-kirby-1", 1, legacy_template(appdef=1), key=key)
        answer = client.post("/submit", data={"args": json.dumps(args)})
        assert answer.status_code == 400 and "version 1 is too old" in answer.get_json()["error"]
        args = submit_args("jarvice-kirby-1", 1, legacy_template(appdef=1), key="other")
        answer = client.post("/submit", data={"args": json.dumps(args)})
        assert answer.get_json()["error"].startswith(f"hpc_script has no entry {key!r}")
    finally:
        downstream.close()
