"""An interactive native job's node script, run on this machine with the Apptainer stand-in (two nodes)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dssr_core import Settings
from dssr_core._interactive import InteractiveSettings, vnc_password_file

from .helpers import (
    calls,
    context,
    executor,
    native_spec,
    run_nodes,
    standin_path,
    subcommand,
    template_spec,
    write_secrets,
)

KEY = "a key of at least thirty-two characters!"


def access(domain: str = "jobs.example.org", name: str = "njob", number: int = 5):
    env = {"JARVICE_JOBS_DOMAIN": domain, "JARVICE_DSSR_INTERACTIVE_KEY": KEY}
    return InteractiveSettings.from_settings(Settings(env)).access(name, number)


def test_the_job_gets_etc_jarvice_files_its_command_filled_and_rank_0_marks_it_interactive(tmp_path):
    ctx = context(tmp_path)
    service = access()
    spec = native_spec(
        interactive=True,
        service=service,
        url="http://%PUBLICADDR%:8888/?token=%RANDOM64%",
        command='echo "token=%RANDOM64% pw=%NIMBIXPASSWD% at %PUBLICADDR% port=$JARVICE_SERVICE_PORT"; '
        'cat "$DSSR_ETC"/random16.txt; echo; '
        'if [ "$PROCESS_PROCID" = 0 ]; then cp "$DSSR_ETC/vncpasswd" vnc.copy; fi',
    )
    launch = executor(JARVICE_SINGULARITY_OVERLAY_SIZE="0").launch(spec, ctx)
    for secret in (service.password, *service.randoms.values()):
        assert secret not in launch.node_script
        assert secret in launch.secrets.values()
    write_secrets(launch, ctx)
    job = Path(ctx.job_dir)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), env={"DSSR_ETC": str(job / ".dssr-etc-jarvice-0")})
    assert [r.rc for r in runs] == [0, 0], runs
    for run in runs:
        assert f"token={service.randoms[64]} pw={service.password} at {service.public_addr} port=5902" in run.output
    assert service.randoms[16] in runs[0].output  # the file held it while the app ran
    assert (job / "vnc.copy").read_bytes() == vnc_password_file(service.password)  # jarvice-desktop's -rfbauth file
    execs = [c["argv"] for c in calls(ctx) if subcommand(c) == "exec" and "/bin/sh" in c["argv"]]
    binds = sorted(a for argv in execs for a in argv if a.endswith(":/etc/JARVICE:ro"))
    assert binds == [f"{job}/.dssr-etc-jarvice-{rank}:/etc/JARVICE:ro" for rank in (0, 1)]
    # each node's folder is removed when it ends; the service folder stays for the downstream
    assert not list(job.glob(".dssr-etc-jarvice-*"))
    service_dir = job / ".dssr-service"
    assert (service_dir / "url.txt").read_text() == "http://%PUBLICADDR%:8888/?token=%RANDOM64%\n"
    assert (service_dir / "interactive").read_text() == "node1\n"
    assert not (service_dir / "help.html").exists()  # the stand-in's image has no /etc/NAE/help.html
    assert (service_dir / "url.txt").stat().st_mode & 0o007 == 0


def test_a_batch_job_writes_no_service_folder_and_gets_no_etc_jarvice(tmp_path):
    ctx = context(tmp_path)
    launch = executor(JARVICE_SINGULARITY_OVERLAY_SIZE="0").launch(native_spec(), ctx)
    runs = run_nodes(launch, ctx, standin_path(tmp_path), nodes=1)
    assert runs[0].rc == 0
    assert not (Path(ctx.job_dir) / ".dssr-service").exists()
    assert not any(a.endswith(":/etc/JARVICE:ro") for c in calls(ctx) for a in c["argv"])
    assert "JARVICE_SERVICE_PORT" not in launch.node_script


def fake_container(seconds: float, url: str | None = None, help_link: bool = False) -> str:
    """What a template's container looks like from the node: a descendant of the node script that enters a
    mount namespace of its own, builds its image's root there (a tmpfs with the node's /usr, and, when
    asked, an /etc/NAE/url.txt and a help.html that is a symbolic link to a file the node has too, its own
    /etc/hostname) and only then changes its root to it, as a container runtime does."""
    steps = [
        "r=$(mktemp -d)",
        'mount -t tmpfs image "$r"',
        'mkdir -p "$r/usr" "$r/etc/NAE" "$r/tmp" "$r/dev"',
        'mount --rbind /usr "$r/usr"',
        'mount --rbind /dev "$r/dev"',
        'ln -s usr/bin "$r/bin"',
        'ln -s usr/lib "$r/lib"',
        'ln -s usr/lib64 "$r/lib64"',
        "sleep 1",
    ]  # a while in its namespace before its root changes
    if url is not None:
        steps.append(f'printf "%s\\n" "{url}" >"$r/etc/NAE/url.txt"')
    if help_link:
        steps.append('ln -s /etc/hostname "$r/etc/NAE/help.html"')
    steps.append(f'exec chroot "$r" sleep {seconds}')
    return "unshare --mount sh -c '" + " && ".join(steps) + "'"


def run_template(script: str, job_dir: str, rank: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PROCESS_PROCID": rank, "PROCESS_NODENAME": f"node{int(rank) + 1}"}
    return subprocess.run(
        ["bash", "-c", script], env={**base, **env}, cwd=job_dir, capture_output=True, text=True, timeout=60
    )


def start_template(script: str, job_dir: str) -> subprocess.Popen[bytes]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PROCESS_PROCID": "0", "PROCESS_NODENAME": "node1"}
    return subprocess.Popen(
        ["bash", "-c", script],
        env=env,
        cwd=job_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(job: subprocess.Popen[bytes]) -> None:
    """End the template and everything it started (its process group)."""
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()


def wait_for(path: Path, timeout: float) -> float:
    """Seconds until ``path`` exists (fails after ``timeout``)."""
    start = time.monotonic()
    while not path.exists():
        assert time.monotonic() - start < timeout, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a mount namespace of its own (the fake container) needs root"
)


@needs_root
def test_an_interactive_upstream_template_copies_the_images_nae_files_out_of_its_container_then_marks(tmp_path):
    ctx = context(tmp_path)
    service = access(domain="portal.example.org/job$")
    body = fake_container(2, url="https://%PUBLICADDR%:8888/?token=%RANDOM64%", help_link=True)
    spec = template_spec(body=body).replace(interactive=True, service=service)
    script = executor().launch(spec, ctx).node_script
    assert "export SINGULARITYENV_JARVICE_SERVICE_PORT=5902" in script
    assert f"export SINGULARITYENV_JARVICE_INGRESSPATH=job{service.label}" in script
    service_dir = Path(ctx.job_dir) / ".dssr-service"
    assert run_template(script, ctx.job_dir, "1").returncode == 0
    assert not service_dir.exists()  # rank 1 watches nothing
    assert run_template(script, ctx.job_dir, "0").returncode == 0
    assert (service_dir / "url.txt").read_text() == "https://%PUBLICADDR%:8888/?token=%RANDOM64%\n"
    assert not (service_dir / "help.html").exists()  # a link would be followed on the node's root: not copied
    assert (service_dir / "interactive").read_text() == "node1\n"
    assert (service_dir / "url.txt").stat().st_mode & 0o007 == 0
    batch = executor().launch(template_spec(body="true"), ctx).node_script
    assert "export SINGULARITYENV_JARVICE_SERVICE_PORT=2228" in batch and ".dssr-service" not in batch


@needs_root
def test_a_container_without_nae_files_is_marked_as_soon_as_it_starts_and_a_namespace_alone_never(tmp_path):
    ctx = context(tmp_path)
    spec = template_spec(body=fake_container(6)).replace(interactive=True, service=access())
    service_dir = Path(ctx.job_dir) / ".dssr-service"
    job = start_template(executor().launch(spec, ctx).node_script, ctx.job_dir)
    try:
        # the container enters its namespace at once and changes its root after 1 s: it is marked then,
        # with no wait for an /etc/NAE that its image does not have
        assert 0.9 < wait_for(service_dir / "interactive", 3) < 2.5
        assert job.poll() is None  # while it runs
        assert (service_dir / "interactive").read_text() == "node1\n"
        assert not (service_dir / "url.txt").exists() and not (service_dir / "help.html").exists()
    finally:
        stop(job)
    (service_dir / "interactive").unlink()
    # a process in a mount namespace of its own that keeps the node's root, or no container at all:
    # nothing to link to
    for body in ("unshare --mount sleep 2", "sleep 2"):
        spec = template_spec(body=body).replace(interactive=True, service=access())
        assert run_template(executor().launch(spec, ctx).node_script, ctx.job_dir, "0").returncode == 0
        assert not (service_dir / "interactive").exists(), body


@needs_root
def test_the_apps_container_after_an_init_container_without_nae_still_brings_its_files(tmp_path):
    ctx = context(tmp_path)
    body = fake_container(1) + " && " + fake_container(3, url="https://%PUBLICADDR%/app?t=%RANDOM16%")
    spec = template_spec(body=body).replace(interactive=True, service=access())
    service_dir = Path(ctx.job_dir) / ".dssr-service"
    job = start_template(executor().launch(spec, ctx).node_script, ctx.job_dir)
    try:
        wait_for(service_dir / "interactive", 3)
        assert not (service_dir / "url.txt").exists()  # the init container's image has no /etc/NAE
        wait_for(service_dir / "url.txt", 4)  # the app's container, one second after it started
        assert (service_dir / "url.txt").read_text() == "https://%PUBLICADDR%/app?t=%RANDOM16%\n"
        assert job.poll() is None
    finally:
        stop(job)


def test_an_interactive_upstream_template_gets_etc_jarvice_bound_into_its_containers_and_its_command_filled(tmp_path):
    ctx = context(tmp_path)
    service = access(name="tjob", number=1)
    body = (
        'printf "cmd=%s\\n" "$JARVICE_CMD"; printf "bind=%s\\n" "$APPTAINER_BIND"; '
        'printf "sbind=%s\\n" "$SINGULARITY_BIND"; env | grep "^DSSR_" || echo "no secret in the environment"'
    )
    spec = template_spec(body=body, cmd="jupyter --token=%RANDOM64% --base=%BASEURL% # %NIMBIXPASSWD%")
    launch = executor().launch(spec.replace(interactive=True, service=service), ctx)
    for secret in (service.password, *service.randoms.values()):
        assert secret not in launch.node_script
    write_secrets(launch, ctx)
    env = {
        "PATH": "/usr/bin:/bin",
        "PROCESS_PROCID": "0",
        "PROCESS_NODENAME": "node1",
        "JOB_JOB_FORMATED_NODELIST": "node1 node2",
        "SINGULARITY_BIND": "/site/data",
    }
    run = subprocess.run(
        ["bash", "-c", launch.node_script], env=env, cwd=ctx.job_dir, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    etc = Path(ctx.job_dir) / ".dssr-etc-jarvice-0"
    assert f"cmd=jupyter --token={service.randoms[64]} --base=/ # {service.password}\n" in run.stdout
    # the site's own binds are kept, in both spellings (Apptainer prefers APPTAINER_BIND when they differ)
    assert f"bind=/site/data,{etc}:/etc/JARVICE:ro\n" in run.stdout
    assert f"sbind=/site/data,{etc}:/etc/JARVICE:ro\n" in run.stdout
    assert "no secret in the environment" in run.stdout
    assert (etc / "random128.txt").read_text() == service.randoms[128]
    assert (etc / "vncpasswd").read_bytes() == vnc_password_file(service.password)
    assert (etc / "nodes").read_text() == "node1\nnode2\n"
    assert (etc / "random16.txt").stat().st_mode & 0o077 == 0


@needs_root
def test_a_scan_lists_each_started_container_once_and_does_not_walk_the_processes_inside_it(tmp_path):
    """A container whose app has children of its own (a desktop's hundred processes) costs the scan one
    process: what runs inside a started container is not walked."""
    watch = Path(__file__).resolve().parents[2] / "plugins" / "dssr_singularity" / "nae_watch.sh"
    container = fake_container(5).replace(
        'exec chroot "$r" sleep 5', 'exec chroot "$r" sh -c "sleep 5 & sleep 5 & sleep 5 & wait"'
    )
    script = (
        f"source {watch}\n{container} &\nsleep 2\ndssr_containers $$\n"
        'echo "found=${dssr_containers[*]} kid=$!"\n'
        'echo "inside=$(wc -w < /proc/${dssr_containers[0]}/task/${dssr_containers[0]}/children)"\n'
        "kill -9 $(jobs -p) 2>/dev/null; exit 0"
    )
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    found = dict(line.split("=", 1) for line in run.stdout.split())
    assert found["found"] == found["kid"], run.stdout + run.stderr  # the container (unshare exec'd sh, chroot)
    assert found["inside"] == "3"  # its children, in it, were not listed
