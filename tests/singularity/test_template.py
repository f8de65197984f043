"""Upstream template submissions: the export block of the first implementation, filled and quoted."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dssr_core import BadRequest, ConfigError

from .helpers import b64, context, executor, template_spec, write_secrets

SEED_VARIABLES = {
    "JARVICE_JOB_SCRATCH_DIR",
    "JARVICE_JOB_GLOBAL_SCRATCH_DIR",
    "JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES",
    "SINGULARITYENV_JARVICE_SERVICE_PORT",
    "SINGULARITYENV_JARVICE_SSH_PORT",
    "JARVICE_SINGULARITY_TMPDIR",
    "JOB_LOCAL_USER",
    "JARVICE_SINGULARITY_OVERLAY_SIZE",
    "JARVICE_INIT_DOCKER_USERNAME",
    "JARVICE_INIT_DOCKER_PASSWORD",
    "JARVICE_DOCKER_USERNAME",
    "JARVICE_DOCKER_PASSWORD",
    "JARVICE_APP_IMAGE",
    "JARVICE_INIT_IMAGE",
    "JARVICE_CMD",
    "SV",
    "SV_FLAG",
    "SCHTTP_PROXY",
    "SCHTTPS_PROXY",
    "SCNO_PROXY",
}
PRINT_ALL = "\n".join(f'printf "%s=%s\\n" {name} "${name}"' for name in sorted(SEED_VARIABLES))


def filled_values(
    tmp_path: Path, spec_kwargs: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> dict[str, str]:
    """Run the filled template in bash (after writing the secrets file as a connector does): variable -> value."""
    ctx = context(tmp_path)
    launch = executor(**(env or {})).launch(template_spec(body=PRINT_ALL, **(spec_kwargs or {})), ctx)
    write_secrets(launch, ctx)
    out = subprocess.run(
        ["bash", "-c", launch.node_script], capture_output=True, text=True, check=True, cwd=ctx.job_dir
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_export_block_sets_exactly_the_variables_of_the_first_implementation(tmp_path):
    launch = executor().launch(template_spec(), context(tmp_path))
    exported = set(re.findall(r"^export ([A-Z_]+)=", launch.node_script, re.M))
    assert exported == SEED_VARIABLES


def test_scratch_dirs_are_the_user_scratch_and_the_scratch_root_with_trailing_slash(tmp_path):
    values = filled_values(tmp_path)
    assert values["JARVICE_JOB_SCRATCH_DIR"] == f"{tmp_path}/users/kirby/"
    assert values["JARVICE_JOB_GLOBAL_SCRATCH_DIR"] == f"{tmp_path}/"
    assert values["JOB_LOCAL_USER"] == "kirby"
    assert values["JARVICE_SINGULARITY_TMPDIR"] == "/tmp"


def test_a_command_with_spaces_quotes_and_substitutions_survives_intact_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"""/bin/echo "it's a 'test'" $(touch {marker}) `touch {marker}` ; touch {marker} && echo $HOME"""
    values = filled_values(tmp_path, {"cmd": cmd})
    assert values["JARVICE_CMD"] == cmd
    assert not marker.exists()


def test_registry_credentials_are_not_in_the_filled_template(tmp_path):
    spec = template_spec(
        docker_secret={"server": "index.docker.io", "username": "appuser", "password": "app-S3cret"},
        ctrsecret={"quay.io": {"auth": b64("ctr:ctr-S3cret")}},
    )
    assert spec.template is not None
    assert "JOBOBJ_CTRSECRET=ey" in spec.template.text
    launch = executor(JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64("sys-S3cret")).launch(
        spec, context(tmp_path)
    )
    assert re.search(r"^JOBOBJ_CTRSECRET=$", launch.node_script, re.M)
    assert re.search(r"^JOBOBJ_DOCKER_SECRET=$", launch.node_script, re.M)
    for secret in ("app-S3cret", "sys-S3cret", b64("app-S3cret"), b64("sys-S3cret"), "appuser", b64("appuser")):
        assert secret not in launch.node_script
    assert launch.secrets["JARVICE_DOCKER_PASSWORD"] == b64("app-S3cret")
    assert launch.secrets["JARVICE_INIT_DOCKER_PASSWORD"] == b64("sys-S3cret")


def test_registry_credentials_reach_the_template_through_the_secrets_file_base64(tmp_path):
    values = filled_values(
        tmp_path,
        {"docker_secret": {"server": "index.docker.io", "username": "appuser", "password": "p'w d"}},
        {"JARVICE_DOCKER_USERNAME": b64("sysuser"), "JARVICE_DOCKER_PASSWORD": b64("syspw")},
    )
    assert values["JARVICE_DOCKER_USERNAME"] == b64("appuser")
    assert values["JARVICE_DOCKER_PASSWORD"] == b64("p'w d")
    assert values["JARVICE_INIT_DOCKER_USERNAME"] == b64("sysuser")
    assert values["JARVICE_INIT_DOCKER_PASSWORD"] == b64("syspw")
    assert values["JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES"] == "False"


def test_without_credentials_the_app_is_in_global_registries_and_credentials_are_empty(tmp_path):
    values = filled_values(tmp_path)
    assert values["JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES"] == "True"
    assert values["JARVICE_DOCKER_USERNAME"] == "" and values["JARVICE_DOCKER_PASSWORD"] == ""


def test_init_image_is_built_from_the_system_registry_and_appdef_version(tmp_path):
    values = filled_values(tmp_path, {"appdef": 3})
    assert (
        values["JARVICE_INIT_IMAGE"] == "docker://us-docker.pkg.dev/jarvice-system/images/initv3:jarvice-3.24.5-amd64"
    )


def test_init_image_tag_takes_the_jobs_architecture(tmp_path):
    values = filled_values(tmp_path, {"arch": "arm64"})
    assert values["JARVICE_INIT_IMAGE"].endswith("/initv2:jarvice-3.24.5-arm64")


def test_init_image_tag_without_architecture_suffix_is_kept(tmp_path):
    values = filled_values(tmp_path, {"arch": "arm64"}, {"JARVICE_IMAGES_TAG": "jarvice-3.24.5"})
    assert values["JARVICE_INIT_IMAGE"].endswith("/initv2:jarvice-3.24.5")


def test_app_image_is_the_jobs_repo(tmp_path):
    values = filled_values(tmp_path, {"repo": "quay.io/acme/solver:1.2"})
    assert values["JARVICE_APP_IMAGE"] == "docker://quay.io/acme/solver:1.2"


def test_app_image_comes_from_the_local_registry_when_one_is_configured(tmp_path):
    values = filled_values(
        tmp_path, env={"JARVICE_LOCAL_REGISTRY": "registry.local:5000", "JARVICE_LOCAL_REPO_BASE": "cache/apps"}
    )
    assert values["JARVICE_APP_IMAGE"] == "docker://registry.local:5000/cache/apps/ubuntu-app:latest"


def test_local_registry_without_repo_base_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="JARVICE_LOCAL_REPO_BASE"):
        executor(JARVICE_LOCAL_REGISTRY="registry.local:5000")


def test_template_without_system_registry_is_a_config_error_naming_it(tmp_path):
    exe = executor(JARVICE_SYSTEM_REGISTRY="")
    with pytest.raises(ConfigError, match="JARVICE_SYSTEM_REGISTRY"):
        exe.launch(template_spec(), context(tmp_path))


def test_job_docker_secret_is_used_when_its_server_serves_the_image(tmp_path):
    spec = template_spec(
        repo="quay.io/acme/solver:1",
        docker_secret={"server": "https://quay.io", "username": "own", "password": "ownpw"},
        ctrsecret={"quay.io": {"auth": b64("ctr:ctrpw")}},
    )
    launch = executor().launch(spec, context(tmp_path))
    assert launch.secrets["JARVICE_DOCKER_USERNAME"] == b64("own")
    assert launch.secrets["JARVICE_DOCKER_PASSWORD"] == b64("ownpw")


def test_ctrsecret_auths_are_used_when_the_job_secret_is_for_another_registry(tmp_path):
    spec = template_spec(
        repo="quay.io/acme/solver:1",
        docker_secret={"server": "ghcr.io", "username": "own", "password": "ownpw"},
        ctrsecret={"https://quay.io/v1/": {"auth": b64("ctr:ctr:pw")}},
    )
    launch = executor().launch(spec, context(tmp_path))
    assert launch.secrets["JARVICE_DOCKER_USERNAME"] == b64("ctr")
    assert launch.secrets["JARVICE_DOCKER_PASSWORD"] == b64("ctr:pw")


def test_no_credentials_when_no_secret_matches_the_images_registry(tmp_path):
    spec = template_spec(repo="quay.io/acme/solver:1", ctrsecret={"ghcr.io": {"auth": b64("a:b")}})
    launch = executor().launch(spec, context(tmp_path))
    assert launch.secrets["JARVICE_DOCKER_USERNAME"] == "" and launch.secrets["JARVICE_DOCKER_PASSWORD"] == ""


@pytest.mark.parametrize(
    "repo", ["docker.io/library/ubuntu:24.04", "library/ubuntu", "ubuntu:24.04", "docker.io/acme/app"]
)
def test_docker_io_images_with_two_path_parts_or_fewer_belong_to_index_docker_io(tmp_path, repo):
    spec = template_spec(repo=repo, ctrsecret={"https://index.docker.io/v1/": {"auth": b64("hub:hubpw")}})
    launch = executor().launch(spec, context(tmp_path))
    assert launch.secrets["JARVICE_DOCKER_USERNAME"] == b64("hub")


def test_overlay_size_comes_from_the_setting(tmp_path):
    assert filled_values(tmp_path)["JARVICE_SINGULARITY_OVERLAY_SIZE"] == "600"
    assert (
        filled_values(tmp_path, env={"JARVICE_SINGULARITY_OVERLAY_SIZE": "0"})["JARVICE_SINGULARITY_OVERLAY_SIZE"]
        == "0"
    )


def test_overlay_pseudo_device_overrides_the_setting(tmp_path):
    values = filled_values(tmp_path, {"devices": '["overlay=0"]'}, {"JARVICE_SINGULARITY_OVERLAY_SIZE": "900"})
    assert values["JARVICE_SINGULARITY_OVERLAY_SIZE"] == "0"


def test_verbose_setting_gives_minus_v_else_minus_s(tmp_path):
    assert (filled_values(tmp_path)["SV"], filled_values(tmp_path)["SV_FLAG"]) == ("false", "-s")
    verbose = filled_values(tmp_path, env={"JARVICE_SINGULARITY_VERBOSE": "true"})
    assert (verbose["SV"], verbose["SV_FLAG"]) == ("true", "-v")


def test_proxies_are_passed(tmp_path):
    values = filled_values(
        tmp_path,
        env={
            "JARVICE_BAREMETAL_HTTP_PROXY": "http://proxy:3128",
            "JARVICE_BAREMETAL_HTTPS_PROXY": "http://proxy:3128",
            "JARVICE_BAREMETAL_NO_PROXY": "localhost,.cluster",
        },
    )
    assert (values["SCHTTP_PROXY"], values["SCHTTPS_PROXY"], values["SCNO_PROXY"]) == (
        "http://proxy:3128",
        "http://proxy:3128",
        "localhost,.cluster",
    )


@pytest.mark.parametrize(
    "name,value",
    [
        ("JARVICE_BAREMETAL_HTTP_PROXY", "proxy; rm -rf /"),
        ("JARVICE_SINGULARITY_OVERLAY_SIZE", "big"),
        ("JARVICE_SINGULARITY_VERBOSE", "maybe"),
        ("JARVICE_SINGULARITY_TMPDIR", "relative/dir"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        executor(**{name: value})


def test_a_template_with_a_bad_app_image_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="not a container image reference"):
        executor().launch(template_spec(repo="ubuntu;reboot"), context(tmp_path))


def test_template_success_is_the_marker_printed_by_rank_0(tmp_path):
    assert executor().launch(template_spec(), context(tmp_path)).success_marker == "JARVICE_CMD_SUCCESS"


def test_a_template_pulls_over_plain_http_only_when_all_its_images_are_in_listed_registries(tmp_path):
    repo = "10.0.0.5:5000/acme/app:1"
    both = executor(
        JARVICE_SYSTEM_REGISTRY="10.0.0.5:5000", JARVICE_SINGULARITY_INSECURE_REGISTRIES="10.0.0.5:5000"
    ).launch(template_spec(repo=repo), context(tmp_path))
    assert "export APPTAINER_NOHTTPS=1" in both.node_script and "export SINGULARITY_NOHTTPS=1" in both.node_script
    app_only = executor(JARVICE_SINGULARITY_INSECURE_REGISTRIES="10.0.0.5:5000").launch(
        template_spec(repo=repo), context(tmp_path)
    )
    assert "NOHTTPS" not in app_only.node_script  # the init image's registry is not listed
