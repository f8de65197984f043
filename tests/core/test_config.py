"""Settings: typed getters whose errors name the variable and what is allowed."""

from __future__ import annotations

import base64

import pytest

from dssr_core import ConfigError, Downstream, DownstreamSettings, Settings


def test_without_settings_a_downstream_is_the_local_connector_and_the_shell_executor() -> None:
    assert DownstreamSettings.from_settings(Settings({})) == DownstreamSettings("local", "shell")


def test_a_site_naming_slurm_gets_singularity_as_the_first_implementation() -> None:
    chosen = DownstreamSettings.from_settings(Settings({"JARVICE_BAREMETAL_CONNECTOR": "slurm"}))
    assert (chosen.connector, chosen.executor) == ("slurm", "singularity")
    chosen = DownstreamSettings.from_settings(Settings({"JARVICE_BAREMETAL_EXECUTOR": "apptainer"}))
    assert (chosen.connector, chosen.executor) == ("local", "apptainer")


def test_the_library_does_not_read_the_servers_variables(tmp_path) -> None:
    """A tool importing dssr_core runs where dssr-server's settings are wrong or meant for another server."""
    env = {
        "WAITRESS_PORT": "http",
        "WAITRESS_THREADS": "0",
        "JARVICE_SCHED_LOGLEVEL": "verbose",
        "JARVICE_DSSR_LOG_FORMAT": "xml",
        "JARVICE_DSSR_READY_MAX_AGE": "soon",
        "JARVICE_LOCAL_STATE_DIR": str(tmp_path),
    }
    downstream = Downstream.from_settings(Settings(env), connector="local", executor="shell")
    try:
        assert downstream.running() == [] and downstream.queued() == []
    finally:
        downstream.close()


def test_empty_values_count_as_unset() -> None:
    assert Settings({"PORT": ""}).integer("PORT", 5000) == 5000


def test_overrides_win_over_the_environment() -> None:
    assert Settings({"A": "1"}, A="2").raw("A") == "2"


def test_bool_accepts_the_usual_words_and_refuses_others() -> None:
    settings = Settings({"T": "Yes", "F": "off"})
    assert settings.flag("T", False) is True and settings.flag("F", True) is False
    with pytest.raises(ConfigError, match="X='maybe' is not a boolean: use true or false"):
        Settings({"X": "maybe"}).flag("X", True)


def test_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match="MODE='ftp' is not allowed: use one of cli, rest"):
        Settings({"MODE": "ftp"}).choice("MODE", "cli", ["cli", "rest"])


def test_float_refuses_text_and_values_below_the_minimum() -> None:
    with pytest.raises(ConfigError, match="GRACE='soon' is not a number"):
        Settings({"GRACE": "soon"}).number("GRACE", 1.0)
    with pytest.raises(ConfigError, match="GRACE='-1' is out of range"):
        Settings({"GRACE": "-1"}).number("GRACE", 1.0, minimum=0)


def test_required_variable_missing_is_named() -> None:
    with pytest.raises(ConfigError, match="JARVICE_SLURM_HOST is not set: it is required"):
        Settings({}).require("JARVICE_SLURM_HOST")


def test_base64_values_are_decoded() -> None:
    value = base64.b64encode(b"user:pass").decode()
    assert Settings({"CRED": value}).base64_text("CRED") == "user:pass"


def test_a_bad_base64_secret_is_named_without_showing_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        Settings({"JARVICE_REGISTRY_PASSWORD": "hunter2!!"}).base64_text("JARVICE_REGISTRY_PASSWORD")
    assert "JARVICE_REGISTRY_PASSWORD" in str(info.value) and "hunter2" not in str(info.value)


def test_first_returns_the_first_variable_set() -> None:
    assert Settings({"B": "2"}).first("A", "B") == ("B", "2")
    assert Settings({}).first("A", "B") == ("A", None)


def test_a_secret_is_read_from_the_file_its_FILE_variable_names(tmp_path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    assert Settings({"TOKEN_FILE": str(tmp_path / "token")}).secret_text("TOKEN") == ("TOKEN_FILE", "s3cret\n")
    assert Settings({"TOKEN": "inline"}).secret_text("TOKEN") == ("TOKEN", "inline")
    assert Settings({}).secret_text("TOKEN") == ("TOKEN", None)


@pytest.mark.parametrize(
    "content, env, message",
    [
        (
            None,
            {"TOKEN_FILE": "/nonexistent/token"},
            "TOKEN_FILE='/nonexistent/token' cannot be read (No such file or directory)",
        ),
        ("  \n", {"TOKEN_FILE": "{path}"}, "TOKEN_FILE='{path}' is empty"),
        ("s3cret", {"TOKEN_FILE": "{path}", "TOKEN": "inline"}, "TOKEN and TOKEN_FILE are both set: give only one"),
    ],
)
def test_a_bad_secret_file_is_named_with_its_path_never_its_content(tmp_path, content, env, message) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    env = {k: v.format(path=path) for k, v in env.items()}
    with pytest.raises(ConfigError) as info:
        Settings(env).secret_text("TOKEN")
    assert str(info.value).startswith(message.format(path=path))
    assert "s3cret" not in str(info.value) and "inline" not in str(info.value)


def test_a_value_set_by_a_flag_is_named_by_the_flag_in_every_getters_message() -> None:
    """issue 21: `dssr-server --port abc` blames --port, not WAITRESS_PORT; the environment's values keep their names."""
    settings = Settings({"WAITRESS_THREADS": "many"}).updated({"WAITRESS_PORT": "--port"}, WAITRESS_PORT="abc")
    with pytest.raises(ConfigError, match=r"^--port='abc' is not an integer from 1 to 65535\.$"):
        settings.integer("WAITRESS_PORT", 5000, minimum=1, maximum=65535)
    with pytest.raises(ConfigError, match=r"^WAITRESS_THREADS='many' is not an integer"):
        settings.integer("WAITRESS_THREADS", 8)
    assert settings.label("WAITRESS_PORT") == "--port" and settings.label("WAITRESS_THREADS") == "WAITRESS_THREADS"
    assert settings.updated(X="1").label("WAITRESS_PORT") == "--port"  # a copy keeps the labels


@pytest.mark.parametrize(
    "env, connector, executor, chosen",
    [
        ({}, "slurm", None, ("slurm", "singularity")),  # the default of the connector chosen, not of the environment's
        ({"JARVICE_BAREMETAL_EXECUTOR": "shell"}, "slurm", None, ("slurm", "shell")),
        ({"JARVICE_BAREMETAL_CONNECTOR": "slurm"}, "local", None, ("local", "shell")),
        ({"JARVICE_BAREMETAL_CONNECTOR": "slurm"}, None, "apptainer", ("slurm", "apptainer")),
    ],
)
def test_choose_plugins_is_the_one_rule_for_names_given_over_the_environment(
    env: dict[str, str], connector: str | None, executor: str | None, chosen: tuple[str, str]
) -> None:
    from dssr_core import choose_plugins

    settings = choose_plugins(Settings(env), connector, executor, flags=True)
    picked = DownstreamSettings.from_settings(settings)
    assert (picked.connector, picked.executor) == chosen
    assert settings.label("JARVICE_BAREMETAL_CONNECTOR") == (
        "--connector" if connector else "JARVICE_BAREMETAL_CONNECTOR"
    )


def test_an_unknown_plugin_named_by_the_environment_names_the_variable() -> None:
    from dssr_core import PluginError

    with pytest.raises(PluginError, match=r'^JARVICE_BAREMETAL_CONNECTOR: No such connector "pbs"\. Available'):
        Downstream.from_settings(Settings({"JARVICE_BAREMETAL_CONNECTOR": "pbs"}))
    with pytest.raises(PluginError, match=r'^No such connector "pbs"\.'):  # a name given by the caller
        Downstream.from_settings(Settings({}), connector="pbs")
