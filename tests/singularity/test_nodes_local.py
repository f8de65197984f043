"""Several nodes and jobs at once, without a scheduler: the node script run concurrently with bash and the stand-in."""

from __future__ import annotations

from pathlib import Path

from .helpers import (
    b64,
    calls,
    context,
    executor,
    finish,
    native_spec,
    run_nodes,
    standin_path,
    start_nodes,
    subcommand,
    write_secrets,
)

PRIVATE = "us-docker.pkg.dev/jarvice-system/images/private-app:1"


def pulls(*ctxs):
    return [c for ctx in ctxs for c in calls(ctx) if subcommand(c) == "pull"]


def test_two_nodes_of_a_job_pull_the_image_once(tmp_path):
    ctx = context(tmp_path)
    runs = run_nodes(executor().launch(native_spec(), ctx), ctx, standin_path(tmp_path), nodes=2)
    assert [r.rc for r in runs] == [0, 0]
    assert len(pulls(ctx)) == 1
    images = list((tmp_path / "images").glob("*.sif"))
    assert len(images) == 1 and "docker.io_library_ubuntu_24.04" in images[0].name


def test_two_concurrent_jobs_of_the_same_image_pull_it_once(tmp_path):
    first, second = context(tmp_path, user="kirby", job="a"), context(tmp_path, user="mario", job="b")
    path = standin_path(tmp_path)
    procs = start_nodes(executor().launch(native_spec(), first), first, path, nodes=2)
    procs += start_nodes(executor().launch(native_spec(), second), second, path, nodes=2)
    assert [r.rc for r in finish(procs)] == [0, 0, 0, 0]
    assert len(pulls(first, second)) == 1
    assert len(list((tmp_path / "images").iterdir())) == 1


def test_a_pulled_image_is_not_pulled_again(tmp_path):
    first, second = context(tmp_path, job="a"), context(tmp_path, job="b")
    path = standin_path(tmp_path)
    run_nodes(executor().launch(native_spec(), first), first, path, nodes=1)
    run_nodes(executor().launch(native_spec(), second), second, path, nodes=1)
    assert len(pulls(first)) == 1 and pulls(second) == []


def test_a_failed_pull_fails_every_node_and_leaves_no_image_behind(tmp_path):
    ctx = context(tmp_path)
    launch = executor().launch(native_spec(image="quay.io/acme/doesnotexist:1"), ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), nodes=2)
    assert all(r.rc != 0 for r in runs)
    assert all("could not be pulled" in r.output for r in runs)
    assert list((tmp_path / "images").iterdir()) == []
    assert not [c for c in calls(ctx) if subcommand(c) == "exec"]


def test_a_credentialed_image_is_pulled_into_the_users_private_cache_with_the_credentials(tmp_path):
    ctx = context(tmp_path)
    exe = executor(JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64("sys-S3cret"))
    launch = exe.launch(native_spec(image=PRIVATE), ctx)
    write_secrets(launch, ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), nodes=2)
    assert [r.rc for r in runs] == [0, 0], runs
    private = list((Path(ctx.user_scratch) / "images").glob("*.sif"))
    assert len(private) == 1 and not (tmp_path / "images").exists()
    (pull,) = pulls(ctx)
    assert pull["credentials"] == [
        "APPTAINER_DOCKER_PASSWORD",
        "APPTAINER_DOCKER_USERNAME",
        "SINGULARITY_DOCKER_PASSWORD",
        "SINGULARITY_DOCKER_USERNAME",
    ]
    exec_calls = [c for c in calls(ctx) if subcommand(c) == "exec"]
    assert exec_calls and all(c["credentials"] == [] for c in exec_calls)
    assert not any("sys-S3cret" in r.output for r in runs)


def test_without_the_secrets_file_a_credentialed_pull_fails(tmp_path):
    ctx = context(tmp_path)
    exe = executor(JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64("sys-S3cret"))
    runs = run_nodes(exe.launch(native_spec(image=PRIVATE), ctx), ctx, standin_path(tmp_path), nodes=1)
    assert runs[0].rc != 0 and "authentication required" in runs[0].output


def test_each_rank_returns_its_commands_exit_code(tmp_path):
    ctx = context(tmp_path)
    launch = executor().launch(native_spec(command="exit $((PROCESS_PROCID + 3))"), ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), nodes=2)
    assert [r.rc for r in runs] == [3, 4]
    assert not list(Path(ctx.job_dir).glob("overlay-*.img"))


def test_a_shared_image_is_readable_by_every_user_and_a_private_one_by_its_owner_only(tmp_path):
    shared, private = context(tmp_path, job="shared"), context(tmp_path, job="private")
    path = standin_path(tmp_path)
    env: dict[str, str] = {}
    run_nodes(executor().launch(native_spec(), shared), shared, path, nodes=1, env=env)
    exe = executor(JARVICE_DOCKER_USERNAME=b64("u"), JARVICE_DOCKER_PASSWORD=b64("p"))
    launch = exe.launch(native_spec(image=PRIVATE), private)
    write_secrets(launch, private)
    run_nodes(launch, private, path, nodes=1, env=env)
    (shared_image,) = (tmp_path / "images").glob("*.sif")
    (private_image,) = (Path(private.user_scratch) / "images").glob("*.sif")
    assert shared_image.stat().st_mode & 0o777 == 0o644
    assert private_image.stat().st_mode & 0o777 == 0o600
