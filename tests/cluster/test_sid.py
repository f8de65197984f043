"""Tests of the Slurm 26.05 test cluster itself (tests/cluster/slurm2605.py): every promise it makes, on the real daemons."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cluster import slurm2605 as sid
from tests.cluster.model import Cluster
from tests.cluster.slurmconf import rest_get

pytestmark = pytest.mark.cluster


def wait_sacct(cluster: Cluster, jobid: str, timeout: float = 60) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = cluster.run(
            ["sacct", "-X", "-P", "-n", "-j", jobid, "--format=State,ExitCode"],
            user="root",
            check=False,
        ).stdout.strip()
        if out and out.split("|")[0] not in ("PENDING", "RUNNING", "COMPLETING"):
            state, code = out.splitlines()[0].split("|")
            return state, code
        time.sleep(0.5)
    raise AssertionError(f"job {jobid} not finished in sacct after {timeout}s: {out!r}")


def in_job(cluster: Cluster, user: str, script: str, timeout: float = 180) -> tuple[int, str, str]:
    """``script`` in a one-node job step as ``user`` (in a scratch folder of the user's own)."""
    cp = cluster.run(
        ["srun", "-N1", "bash", "-c", f'cd "$(mktemp -d)" && {script}'],
        user=user,
        check=False,
        timeout=timeout,
    )
    return cp.returncode, cp.stdout, cp.stderr


def test_two_idle_slurm_2605_nodes_and_a_two_node_step_spans_both(
    slurm2605_cluster: Cluster,
) -> None:
    c = slurm2605_cluster
    assert c.slurm_version.startswith("26.05.")
    c.wait_idle(60)
    out = c.run(["srun", "-N2", "-n2", "hostname"], user="kirby", timeout=60).stdout
    assert sorted(out.split()) == ["snode1", "snode2"] == sorted(c.nodes)


def test_accounting_records_a_failed_jobs_exit_code(slurm2605_cluster: Cluster) -> None:
    jobid = slurm2605_cluster.run(["sbatch", "--parsable", "--wrap", "exit 3"], user="mario").stdout.strip()
    assert wait_sacct(slurm2605_cluster, jobid.split(";")[0]) == ("FAILED", "3:0")


def test_a_job_runs_the_real_apptainer_in_a_user_namespace_on_an_image_from_the_test_registry(
    slurm2605_cluster: Cluster,
) -> None:
    c = slurm2605_cluster
    assert c.apptainer_version.startswith("1.4.")
    rc, out, err = in_job(
        c,
        "kirby",
        f"apptainer -s pull --no-https i.sif docker://{c.images['public']}:1 && "
        "apptainer -s exec i.sif sh -c 'cat /etc/dssr-image; id -u; "
        "test -e /etc/debian_version && echo host-root || echo own-root'",
    )
    assert rc == 0, err
    assert out.split() == ["public", str(c.users["kirby"].uid), "own-root"]


def test_the_private_registry_wants_its_credentials(slurm2605_cluster: Cluster) -> None:
    c = slurm2605_cluster
    user, password = c.registry_credentials
    ref = f"docker://{c.images['private']}:1"
    rc, _, err = in_job(c, "mario", f"apptainer -s pull --no-https p.sif {ref}")
    assert rc != 0 and "authentication required" in err
    rc, out, err = in_job(
        c,
        "mario",
        f"APPTAINER_DOCKER_USERNAME={user} APPTAINER_DOCKER_PASSWORD={password} "
        f"apptainer -s pull --no-https p.sif {ref} && apptainer -s exec p.sif cat /etc/dssr-image",
    )
    assert (rc, out.strip()) == (0, "private"), err
    # and the registry itself says so: 401 without a login
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{c.private_registry}/v2/dssr/private/tags/list", timeout=10)
    assert e.value.code == 401


def test_overlay_images_and_writable_tmpfs_give_a_writable_root_the_plain_image_does_not(
    slurm2605_cluster: Cluster,
) -> None:
    c = slurm2605_cluster
    rc, out, err = in_job(
        c,
        "kirby",
        f"""apptainer -s pull --no-https i.sif docker://{c.images["public"]}:1
apptainer -s overlay create --size 64 o.img
apptainer -s exec --overlay o.img i.sif sh -c 'echo a > /new && cat /new'
apptainer -s exec --overlay o.img i.sif cat /new
apptainer -s exec --writable-tmpfs i.sif sh -c 'echo b > /new && cat /new'
apptainer -s exec i.sif sh -c 'echo c > /new' 2>/dev/null || echo read-only""",
    )
    assert (rc, out.split()) == (0, ["a", "a", "b", "read-only"]), err


def test_ssh_is_key_only_and_lands_in_the_sid_root(slurm2605_cluster: Cluster) -> None:
    paramiko = pytest.importorskip("paramiko")
    c = slurm2605_cluster
    cl = paramiko.SSHClient()
    cl.load_host_keys(str(c.known_hosts))
    cl.set_missing_host_key_policy(paramiko.RejectPolicy())
    cl.connect(
        c.host,
        port=c.ssh_port,
        username="jarvice",
        key_filename=str(c.jarvice_key),
        allow_agent=False,
        look_for_keys=False,
        timeout=15,
    )
    try:
        _, out, _ = cl.exec_command("sinfo -h -N -o %N; command -v apptainer", timeout=30)
        assert out.read().decode().split() == ["snode1", "snode2", "/usr/bin/apptainer"]
    finally:
        cl.close()
    with pytest.raises(paramiko.AuthenticationException):
        paramiko.Transport((c.host, c.ssh_port)).connect(username="kirby", password="")


def test_slurmrestd_offers_the_2605_parsers_to_hs256_and_idp_tokens(
    slurm2605_cluster: Cluster,
) -> None:
    c = slurm2605_cluster
    assert {"v0.0.43", "v0.0.44", "v0.0.45"} <= set(c.rest_versions)
    code, body = rest_get(f"{c.restd_url}/slurm/v0.0.45/jobs/", "kirby", c.token("kirby"), timeout=15)
    assert code == 200 and "jobs" in body
    code, _ = rest_get(
        f"{c.restd_url}/slurm/v0.0.45/jobs/",
        "kirby",
        c.idp.mint(user="kirby"),
        timeout=15,
    )
    assert code == 200
    code, _ = rest_get(f"{c.restd_url}/slurm/v0.0.45/jobs/", "kirby", "not-a-token", timeout=15)
    assert code in (
        401,
        511,
    )  # 26.05 answers a bad token with 511 Network Authentication Required


def test_jobs_get_a_dev_of_their_own_and_the_cluster_shares_nothing_with_the_others(
    slurm2605_cluster: Cluster,
) -> None:
    c = slurm2605_cluster
    rc, out, err = in_job(c, "kirby", "stat -c %a /dev/fuse; awk '$2 == \"/dev\" {print $1}' /proc/mounts")
    assert (rc, out.split()) == (0, ["666", "dssr-dev"]), err
    host_dev = [ln.split()[0] for ln in Path("/proc/self/mounts").read_text().splitlines() if ln.split()[1] == "/dev"]
    assert "dssr-dev" not in host_dev
    assert c.state_dir == sid.STATE and not str(sid.STATE).startswith("/run/dssr-test-cluster")
    assert all(u.uid >= sid.UID_BASE for u in c.users.values())  # not the host's accounts of the 22.05 cluster
    assert {c.ports["ctld"], c.ports["ssh"], c.ports["restd"]}.isdisjoint({6817, 7817, 22022, 6820, 7820})
