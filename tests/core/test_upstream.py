"""The upstream template (dssr_core.parse_template) and the /submit form (dssr_server.wire): every key, every refusal."""

from __future__ import annotations

import base64
import json

import pytest

from dssr_core import BadRequest, JobSpec, fill_template
from dssr_core._upstream import parse_template
from dssr_server.wire import parse_submission
from tests.helpers import encode, legacy_template, submit_args


def parse(extra: dict[str, str] | None = None, **kw: object) -> JobSpec:
    return parse_template(legacy_template(extra=extra, **kw), nodes=2, name="jarvice-kirby-42", number=42)  # type: ignore[arg-type]  # each test passes each key the type legacy_template wants


def refused(match: str, extra: dict[str, str] | None = None, **kw: object) -> None:
    with pytest.raises(BadRequest, match=match):
        parse(extra, **kw)


# -- keys ------------------------------------------------------------------


def test_submission_reads_name_number_nodes_and_template() -> None:
    spec = parse_submission(submit_args("jarvice-kirby-42", 42, legacy_template("sleep 1"), nodes=3), "singularity")
    assert (spec.name, spec.number, spec.nodes, spec.command) == ("jarvice-kirby-42", 42, 3, "sleep 1")
    assert spec.template is not None and "{DOWNSTREAM_PARAMETERS}" in spec.template.text


def test_number_and_nodes_may_be_sent_as_strings() -> None:
    args = submit_args("job-1", 7, legacy_template())
    args.update(number="7", nodes="2")
    spec = parse_submission(args, "singularity")
    assert (spec.number, spec.nodes) == (7, 2)


def test_template_is_taken_from_the_configured_executor_entry() -> None:
    args = submit_args("job-1", 1, legacy_template("from-shell"), key="shell")
    args["hpc_script"]["singularity"] = encode(legacy_template("from-singularity"))
    assert parse_submission(args, "shell").command == "from-shell"
    assert parse_submission(args, "singularity").command == "from-singularity"


def test_appdef_version_2_and_above_is_accepted() -> None:
    assert parse(appdef=2).template.appdef_version == 2  # type: ignore[union-attr]  # a parsed template is kept on the spec
    assert parse(appdef=3).template.appdef_version == 3  # type: ignore[union-attr]  # a parsed template is kept on the spec


def test_cores_per_node_come_from_jarvice_cpu_cores() -> None:
    assert parse(cores=16).cores == 16


def test_interactive_true_and_false() -> None:
    assert parse({"JOBOBJ_INTERACTIVE": "True"}).interactive is True
    assert parse({"JOBOBJ_INTERACTIVE": "False"}).interactive is False


def test_arch_x86_64_means_amd64() -> None:
    assert parse({"JOBOBJ_ARCH": "x86_64"}).arch == "amd64"
    assert parse({"JOBOBJ_ARCH": "amd64"}).arch == "amd64"
    assert parse({"JOBOBJ_ARCH": "arm64"}).arch == "arm64"


def test_app_name_repo_and_user_are_read() -> None:
    template = parse({"JOBOBJ_NAE": "my-app", "JOBOBJ_REPO": "docker.io/me/app:1", "JOBOBJ_USER": "mario"}).template
    assert template is not None
    assert (template.app, template.repo, template.upstream_user) == ("my-app", "docker.io/me/app:1", "mario")


def test_ctrsecret_gives_registry_auths() -> None:
    auth = base64.b64encode(b"user:pass").decode()
    config = base64.b64encode(json.dumps({"auths": {"registry.example.com": {"auth": auth}}}).encode()).decode()
    template = parse({"JOBOBJ_CTRSECRET": config}).template
    assert template is not None
    assert template.registry_auths == {"registry.example.com": {"auth": auth}}


def test_docker_secret_is_read() -> None:
    secret = {"server": "r.example.com", "username": "u", "password": "p4ss"}
    template = parse({"JOBOBJ_DOCKER_SECRET": json.dumps(secret)}).template
    assert template is not None and template.docker_secret == secret


def test_secrets_never_appear_in_the_spec_repr() -> None:
    auth = base64.b64encode(b"user:topsecret1").decode()
    config = base64.b64encode(json.dumps({"auths": {"r": {"auth": auth}}}).encode()).decode()
    secret = json.dumps({"server": "r", "username": "u", "password": "topsecret2"})
    spec = parse({"JOBOBJ_CTRSECRET": config, "JOBOBJ_DOCKER_SECRET": secret})
    text = repr(spec)
    assert "topsecret2" not in text and auth not in text and config not in text


def test_gpus_ram_licenses_walltime_are_read() -> None:
    spec = parse({"JOBOBJ_GPUS": "2", "JOBOBJ_RAM": "64", "JOBOBJ_LICENSES": "fluent:2", "JOBOBJ_WALLTIME": "01:30:00"})
    assert (spec.gpus, spec.memory_gb, spec.licenses, spec.walltime) == (2, 64, "fluent:2", "01:30:00")


def test_walltime_with_days_is_accepted() -> None:
    assert parse({"JOBOBJ_WALLTIME": "1-00:00:00"}).walltime == "1-00:00:00"


def test_absent_optional_keys_take_defaults() -> None:
    spec = parse()
    assert (spec.gpus, spec.memory_gb, spec.licenses, spec.walltime, spec.partition) == (0, 0, None, None, None)
    assert spec.exclusive is True and spec.overlay_mb is None and dict(spec.scheduler_flags) == {}


def test_the_first_occurrence_of_a_key_wins() -> None:
    text = legacy_template(cores=4) + "JARVICE_CPU_CORES=99\n"
    assert parse_template(text, 1, "job-1", 1).cores == 4


# -- pseudo-devices ----------------------------------------------------------


def devices(*items: str) -> dict[str, str]:
    return {"JOBOBJ_DEVICES": json.dumps(list(items))}


def test_device_partition_sets_the_partition() -> None:
    assert parse(devices("partition=debug")).partition == "debug"


def test_device_exclusive_false_lifts_exclusive_use() -> None:
    spec = parse(devices("exclusive=False"))
    assert spec.exclusive is False and spec.effective_exclusive is False


def test_device_exclusive_false_is_ignored_for_gpu_jobs() -> None:
    spec = parse({**devices("exclusive=False"), "JOBOBJ_GPUS": "1"})
    assert spec.effective_exclusive is True


def test_device_exclusive_false_is_ignored_for_interactive_jobs() -> None:
    spec = parse({**devices("exclusive=False"), "JOBOBJ_INTERACTIVE": "True"})
    assert spec.effective_exclusive is True


def test_device_overlay_sets_megabytes() -> None:
    assert parse(devices("overlay=512")).overlay_mb == 512
    assert parse(devices("overlay=0")).overlay_mb == 0


def test_device_sbatch_flag_becomes_a_scheduler_flag() -> None:
    spec = parse(devices("sbatch_qos=high", "sbatch_constraint=ib"))
    assert dict(spec.scheduler_flags) == {"qos": "high", "constraint": "ib"}


def test_device_sbatch_hold_submits_the_job_held() -> None:
    spec = parse(devices("sbatch_hold=true"))
    assert spec.held is True and "hold" not in spec.scheduler_flags
    assert parse(devices("sbatch_hold=False")).held is False
    assert parse().held is False


def test_device_bad_hold_value_is_refused() -> None:
    refused("Invalid hold setting", devices("sbatch_hold=later"))


def test_devices_are_kept_on_the_template() -> None:
    template = parse(devices("partition=debug", "overlay=1")).template
    assert template is not None and template.devices == ("partition=debug", "overlay=1")


def test_unknown_pseudo_device_is_refused() -> None:
    refused("Unknown pseudo-device 'gpu'", devices("gpu=a100"))


def test_device_without_equals_is_refused() -> None:
    refused("Malformed pseudo-device", devices("partition"))


def test_devices_not_json_is_refused() -> None:
    refused("JOBOBJ_DEVICES is not a JSON list", {"JOBOBJ_DEVICES": "[partition=debug"})


def test_devices_not_a_list_is_refused() -> None:
    refused("must be a JSON list", {"JOBOBJ_DEVICES": '{"partition": "debug"}'})


def test_device_bad_partition_is_refused() -> None:
    refused("Invalid partition", devices("partition=de bug;rm"))


def test_device_bad_exclusive_is_refused() -> None:
    refused("Invalid exclusive setting", devices("exclusive=maybe"))


def test_device_bad_overlay_is_refused() -> None:
    refused("Invalid overlay setting", devices("overlay=-1"))
    refused("Invalid overlay setting", devices("overlay=big"))


def test_device_bad_sbatch_flag_name_is_refused() -> None:
    refused("Invalid scheduler flag", devices("sbatch_--wrap=x"))


def test_device_sbatch_value_with_shell_syntax_is_refused() -> None:
    refused("Invalid value", devices("sbatch_comment=$(reboot)"))


# -- refusals -------------------------------------------------------------


@pytest.mark.parametrize("missing", ["name", "number", "nodes", "hpc_script"])
def test_submission_missing_a_key_is_refused(missing: str) -> None:
    args = submit_args("job-1", 1, legacy_template())
    del args[missing]
    with pytest.raises(BadRequest, match=repr(missing)):
        parse_submission(args, "singularity")


@pytest.mark.parametrize("nodes", [0, -1, "two", True, 1.5, None])
def test_bad_node_count_is_refused(nodes: object) -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["nodes"] = nodes
    with pytest.raises(BadRequest, match="nodes must be an integer"):
        parse_submission(args, "singularity")


@pytest.mark.parametrize("name", ["", "a b", "x;rm -rf /", "../etc", "-lead", 5, None, "x" * 129])
def test_bad_job_name_is_refused(name: object) -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["name"] = name
    with pytest.raises(BadRequest, match="Job name"):
        parse_submission(args, "singularity")


@pytest.mark.parametrize("number", ["forty", True, None, 1.5, "1e3"])
def test_bad_job_number_is_refused(number: object) -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["number"] = number
    with pytest.raises(BadRequest, match="Job number"):
        parse_submission(args, "singularity")


def test_hpc_script_not_an_object_is_refused() -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["hpc_script"] = "c2xlZXA="
    with pytest.raises(BadRequest, match="hpc_script must be an object"):
        parse_submission(args, "singularity")


def test_hpc_script_without_the_executor_entry_is_refused_naming_what_was_sent() -> None:
    args = submit_args("job-1", 1, legacy_template(), key="kubernetes")
    with pytest.raises(BadRequest, match="no entry 'singularity'.*kubernetes"):
        parse_submission(args, "singularity")


def test_hpc_script_entry_not_a_string_is_refused() -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["hpc_script"] = {"singularity": 12}
    with pytest.raises(BadRequest, match="must be a base64 string"):
        parse_submission(args, "singularity")


def test_bad_base64_is_refused() -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["hpc_script"] = {"singularity": "not base64 !!!"}
    with pytest.raises(BadRequest, match="not valid base64"):
        parse_submission(args, "singularity")


def test_base64_of_non_utf8_is_refused() -> None:
    args = submit_args("job-1", 1, legacy_template())
    args["hpc_script"] = {"singularity": base64.b64encode(b"\xff\xfe\x00").decode()}
    with pytest.raises(BadRequest, match="UTF-8"):
        parse_submission(args, "singularity")


def test_appdef_version_below_2_is_refused() -> None:
    refused("appdef version 2 or newer", appdef=1)


def test_missing_appdef_version_is_refused() -> None:
    text = legacy_template().replace("JOBOBJ_APPDEFVERSION=2\n", "")
    with pytest.raises(BadRequest, match="no JOBOBJ_APPDEFVERSION"):
        parse_template(text, 1, "job-1", 1)


def test_missing_cpu_cores_is_refused() -> None:
    text = legacy_template().replace("JARVICE_CPU_CORES=1\n", "")
    with pytest.raises(BadRequest, match="no JARVICE_CPU_CORES"):
        parse_template(text, 1, "job-1", 1)


@pytest.mark.parametrize("cores", [0, "many", "-3"])
def test_bad_cpu_cores_is_refused(cores: object) -> None:
    refused("JARVICE_CPU_CORES", cores=cores)


@pytest.mark.parametrize("key", ["JOBOBJ_GPUS", "JOBOBJ_RAM"])
def test_non_integer_gpus_or_ram_is_refused(key: str) -> None:
    refused(key, {key: "lots"})


def test_interactive_not_a_boolean_is_refused() -> None:
    refused("JOBOBJ_INTERACTIVE", {"JOBOBJ_INTERACTIVE": "maybe"})


def test_bad_arch_is_refused() -> None:
    refused("JOBOBJ_ARCH", {"JOBOBJ_ARCH": "x86 64;ls"})


def test_bad_licenses_are_refused() -> None:
    refused("JOBOBJ_LICENSES", {"JOBOBJ_LICENSES": "fluent:2 $(id)"})


def test_bad_walltime_is_refused() -> None:
    refused("JOBOBJ_WALLTIME", {"JOBOBJ_WALLTIME": "one hour"})


def test_bad_app_name_is_refused() -> None:
    refused("JOBOBJ_NAE", {"JOBOBJ_NAE": "app;reboot"})


def test_ctrsecret_not_base64_json_is_refused() -> None:
    refused("JOBOBJ_CTRSECRET", {"JOBOBJ_CTRSECRET": "%%%"})


def test_ctrsecret_without_auths_object_is_refused() -> None:
    config = base64.b64encode(json.dumps({"auths": ["x"]}).encode()).decode()
    refused("auths", {"JOBOBJ_CTRSECRET": config})


def test_docker_secret_not_json_is_refused() -> None:
    refused("JOBOBJ_DOCKER_SECRET is not a JSON object", {"JOBOBJ_DOCKER_SECRET": "{user"})


def test_docker_secret_missing_a_field_is_refused() -> None:
    refused("must hold 'server', 'username' and 'password'", {"JOBOBJ_DOCKER_SECRET": json.dumps({"server": "r"})})


def test_template_without_parameters_line_is_refused() -> None:
    text = legacy_template().replace("{DOWNSTREAM_PARAMETERS}\n", "")
    with pytest.raises(BadRequest, match="no \\{DOWNSTREAM_PARAMETERS\\} line"):
        parse_template(text, 1, "job-1", 1)


def test_template_with_single_braces_is_refused() -> None:
    text = legacy_template(body="f() { true; }")
    with pytest.raises(BadRequest, match="braces other than"):
        parse_template(text, 1, "job-1", 1)


# -- filling --------------------------------------------------------------


def test_fill_template_replaces_the_parameters_and_undoubles_braces() -> None:
    text = legacy_template(body="f() {{ true; }}")
    filled = fill_template(text, "export A=1")
    assert "export A=1" in filled and "f() { true; }" in filled and "{DOWNSTREAM_PARAMETERS}" not in filled


def test_json_values_are_read_with_the_upstreams_doubled_braces_undone() -> None:
    text = legacy_template().replace(
        "JOBOBJ_USER=kirby", 'JOBOBJ_DOCKER_SECRET={{"server": "r", "username": "u", "password": "p"}}'
    )
    template = parse_template(text, 1, "job-1", 1).template
    assert template is not None and template.docker_secret == {"server": "r", "username": "u", "password": "p"}
