"""Tests of the Slurm 22.05/24.11 test clusters themselves: every promise of tests/cluster/slurm*.py, on the real daemons."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.cluster.model import Cluster
from tests.cluster.slurmconf import rest_get

pytestmark = pytest.mark.cluster


# ---------------------------------------------------------------- helpers
def rest(cluster: Cluster, path: str, user: str, token: str) -> tuple[int, dict[str, Any]]:
    return rest_get(cluster.restd_url + path, user, token, timeout=15)


def sbatch(cluster: Cluster, user: str, *args: str) -> str:
    return cluster.run(["sbatch", "--parsable", *args], user=user).stdout.strip().split(";")[0]


def wait_sacct(cluster: Cluster, jobid: str, user: str = "root", timeout: float = 60) -> tuple[str, str]:
    """(State, ExitCode) of a finished job once accounting has it."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = cluster.run(
            ["sacct", "-X", "-P", "-n", "-j", jobid, "--format=State,ExitCode"], user=user, check=False
        ).stdout.strip()
        last = out
        if out and out.split("|")[0] not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED"):
            state, code = out.splitlines()[0].split("|")
            return state, code
        time.sleep(0.5)
    raise AssertionError(f"job {jobid} not finished in sacct after {timeout}s: {last!r}")


def ssh_client(cluster: Cluster, user: str, key: Path) -> Any:
    paramiko = pytest.importorskip("paramiko")
    cl = paramiko.SSHClient()
    cl.load_host_keys(str(cluster.known_hosts))
    cl.set_missing_host_key_policy(paramiko.RejectPolicy())
    cl.connect(
        cluster.host,
        port=cluster.ssh_port,
        username=user,
        key_filename=str(key),
        allow_agent=False,
        look_for_keys=False,
        timeout=15,
    )
    return cl


def ssh_run(cl: Any, cmd: str) -> tuple[int, str, str]:
    _, out, err = cl.exec_command(cmd, timeout=30)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(), err.read().decode()


# ---------------------------------------------------------------- Slurm 22.05
def test_both_nodes_are_idle_in_sinfo(slurm_cluster: Cluster) -> None:
    slurm_cluster.wait_idle(60)
    out = slurm_cluster.run(["sinfo", "-h", "-N", "-p", slurm_cluster.partition, "-o", "%N %T"]).stdout
    assert dict(ln.split() for ln in out.splitlines()) == {"node1": "idle", "node2": "idle"}
    assert slurm_cluster.nodes == ["node1", "node2"]
    assert slurm_cluster.slurm_version.startswith("22.05.")


def test_two_node_srun_runs_on_both_nodes(slurm_cluster: Cluster) -> None:
    out = slurm_cluster.run(["srun", "-N2", "-n2", "hostname"], user="kirby", timeout=60).stdout
    assert sorted(out.split()) == ["node1", "node2"]


def test_coordinator_sees_and_cancels_a_users_job_that_another_user_cannot_see(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    jobid = sbatch(c, "kirby", "--hold", "--job-name=held", "--wrap", "sleep 300")
    try:
        seen = c.run(["squeue", "-h", "-o", "%i %u"], user="jarvice").stdout.split("\n")
        assert f"{jobid} kirby" in seen
        assert jobid not in c.run(["squeue", "-h", "-o", "%i"], user="mario").stdout.split()
        denied = c.run(["scancel", jobid], user="mario", check=False)
        assert denied.returncode != 0
        c.run(["scancel", jobid], user="jarvice")
        state = c.run(["squeue", "-h", "-t", "all", "-j", jobid, "-o", "%T"], user="jarvice").stdout.strip()
        assert state == "CANCELLED"
    finally:
        c.run(["scancel", jobid], user="root", check=False)


def test_sacct_reports_state_and_exit_code_of_a_finished_job(slurm_cluster: Cluster) -> None:
    jobid = sbatch(slurm_cluster, "kirby", "--wrap", "exit 3")
    assert wait_sacct(slurm_cluster, jobid, user="kirby") == ("FAILED", "3:0")
    # the coordinator sees it in accounting too, a user of the same account does not
    rows = slurm_cluster.run(["sacct", "-a", "-X", "-P", "-n", "-j", jobid, "--format=JobID,User"], user="jarvice")
    assert f"{jobid}|kirby" in rows.stdout.split()
    rows = slurm_cluster.run(["sacct", "-a", "-X", "-P", "-n", "-j", jobid, "--format=JobID"], user="mario")
    assert jobid not in rows.stdout.split()


def test_scontrol_token_lists_jobs_through_slurmrestd_v0038(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    out = c.run(["scontrol", "token", "lifespan=300"], user="jarvice").stdout.strip()
    assert out.startswith("SLURM_JWT=")
    token = out.split("=", 1)[1]
    jobid = sbatch(c, "kirby", "--hold", "--wrap", "sleep 300")
    try:
        status, body = rest(c, "/slurm/v0.0.38/jobs", "jarvice", token)
        assert status == 200, body
        assert not body.get("errors")
        assert int(jobid) in [j["job_id"] for j in body["jobs"]]
        assert "v0.0.38" in c.rest_versions
        # the harness's own HS256 tokens are the same thing
        assert rest(c, "/slurm/v0.0.38/ping", "jarvice", c.token("jarvice"))[0] == 200
    finally:
        c.run(["scancel", jobid], user="root", check=False)


def test_rs256_token_from_the_test_idp_is_accepted_by_slurmrestd(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    token = c.idp.mint("kirby@example.com", user="kirby")
    header = jwt.get_unverified_header(token)
    assert header["kid"] == c.idp.kid and header["alg"] == "RS256"
    claims = jwt.decode(token, c.idp.public_key_pem, algorithms=["RS256"], audience="account", issuer=c.idp.issuer)
    assert claims["azp"] == "jarvice" and claims["sun"] == "kirby" and claims["email"] == "kirby@example.com"
    status, body = rest(c, "/slurm/v0.0.38/jobs", "kirby", token)
    assert status == 200 and not body.get("errors"), body
    # a token signed with a key Slurm does not know is refused
    forged = jwt.encode({"sun": "kirby", "exp": int(time.time()) + 300}, os.urandom(48), algorithm="HS256")
    status, body = rest(c, "/slurm/v0.0.38/jobs", "kirby", forged)
    assert status != 200 or body.get("errors")


def test_sshd_accepts_the_jarvice_keys_and_runs_slurm_commands(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    assert c.known_hosts.read_text().startswith(f"[127.0.0.1]:{c.ssh_port} ssh-ed25519 ")
    for key in (c.jarvice_key, c.jarvice_rsa_key, c.jarvice_ecdsa_key):
        cl = ssh_client(c, c.service_user, key)
        try:
            host_key = cl.get_transport().get_remote_server_key()
            import base64
            import hashlib

            fp = "SHA256:" + base64.b64encode(hashlib.sha256(host_key.asbytes()).digest()).decode().rstrip("=")
            assert fp == c.ssh_host_fingerprint
            rc, out, err = ssh_run(cl, "id -un; squeue -h -o %i >/dev/null && echo squeue-ok")
            assert (rc, out.split()) == (0, ["jarvice", "squeue-ok"]), err
        finally:
            cl.close()
    cl = ssh_client(c, "kirby", c.users["kirby"].key_path)
    try:
        assert ssh_run(cl, "id -un")[1].strip() == "kirby"
    finally:
        cl.close()


def test_sshd_refuses_a_password_login(slurm_cluster: Cluster) -> None:
    paramiko = pytest.importorskip("paramiko")
    cl = paramiko.SSHClient()
    cl.load_host_keys(str(slurm_cluster.known_hosts))
    cl.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException) as e:
        cl.connect(
            slurm_cluster.host,
            port=slurm_cluster.ssh_port,
            username="kirby",
            password="kirby",
            allow_agent=False,
            look_for_keys=False,
            timeout=15,
        )
    cl.close()
    assert getattr(e.value, "allowed_types", ["publickey"]) == ["publickey"]


def _scratch_roundtrip(c: Cluster, root: Path) -> None:
    userdir = root / "users" / "kirby"
    name = f"kirby-{uuid.uuid4().hex[:8]}.txt"
    c.run(f"echo hello > {userdir}/{name}", user="kirby")
    assert c.run(["cat", f"{userdir}/{name}"], user="jarvice").stdout == "hello\n"
    c.run(["rm", "-f", f"{userdir}/{name}"], user="jarvice")
    assert not (userdir / name).exists()
    # a peer is kept out
    assert c.run(["ls", str(userdir)], user="mario", check=False).returncode != 0


def test_group_scratch_lets_jarvice_read_and_delete_a_file_kirby_wrote(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    for sub in ("images", "cache", "users"):
        assert (c.scratch / sub).is_dir()
    for u in c.users:
        st = (c.scratch / "users" / u).stat()
        assert st.st_uid == c.users[u].uid and st.st_mode & 0o777 == 0o770
    _scratch_roundtrip(c, c.scratch)


def test_acl_scratch_lets_jarvice_read_and_delete_a_file_kirby_wrote(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    if c.scratch_acl is None:
        pytest.skip(f"no ACL scratch: {c.scratch_acl_note}")
    acl = c.run(["getfacl", "-p", str(c.scratch_acl / "users" / "kirby")], user="root").stdout
    assert "user:jarvice:rwx" in acl and "default:user:jarvice:rwx" in acl
    _scratch_roundtrip(c, c.scratch_acl)


def test_apptainer_standin_is_on_the_path_of_jobs(slurm_cluster: Cluster) -> None:
    standin = Path(__file__).resolve().parents[1] / "standin" / "apptainer"
    if not standin.exists():
        pytest.skip("tests/standin/apptainer not written yet")
    out = slurm_cluster.run(
        ["srun", "-N2", "-n2", "bash", "-c", "command -v apptainer singularity | wc -l"], user="kirby"
    ).stdout.split()
    assert out == ["2", "2"]


# ---------------------------------------------------------------- Slurm 24.11
def test_2411_rest_v0040_v0041_v0042_list_jobs_with_a_token(slurm2411_cluster: Cluster) -> None:
    c = slurm2411_cluster
    assert c.slurm_version.startswith("24.11.")
    assert c.rest_versions == ["v0.0.40", "v0.0.41", "v0.0.42"]
    jobid = sbatch(c, "kirby", "--hold", "--wrap", "sleep 300")
    try:
        for v in c.rest_versions:
            for user, token in (
                ("jarvice", c.token("jarvice")),
                ("jarvice", c.idp.mint("jarvice@example.com", user="jarvice")),
            ):
                status, body = rest(c, f"/slurm/{v}/jobs", user, token)
                assert status == 200 and not body.get("errors"), (v, body)
                assert int(jobid) in [j["job_id"] for j in body["jobs"]], v
    finally:
        c.run(["scancel", jobid], user="root", check=False)


def test_2411_sacct_and_slurmdb_rest_see_a_finished_job(slurm2411_cluster: Cluster) -> None:
    c = slurm2411_cluster
    jobid = sbatch(c, "kirby", "--wrap", "exit 3")
    assert wait_sacct(c, jobid, user="kirby") == ("FAILED", "3:0")
    for v in c.rest_versions:
        status, body = rest(c, f"/slurmdb/{v}/jobs", "jarvice", c.token("jarvice"))
        assert status == 200 and not body.get("errors"), (v, body)
        jobs = {j["job_id"]: j for j in body["jobs"]}
        assert int(jobid) in jobs, v
        assert "FAILED" in str(jobs[int(jobid)]["state"]["current"])


def test_2411_job_files_in_scratch_show_on_the_host_at_the_same_path(slurm2411_cluster: Cluster) -> None:
    c = slurm2411_cluster
    target = c.scratch / "users" / "kirby" / f"from-2411-{uuid.uuid4().hex[:8]}.txt"
    out = c.run(["srun", "-N1", "bash", "-c", f"hostname; echo 24.11 > {target}"], user="kirby").stdout.split()
    assert out == ["tnode1"]
    assert target.read_text() == "24.11\n"
    target.unlink()
    standin = Path(__file__).resolve().parents[1] / "standin" / "apptainer"
    if standin.exists():
        assert c.run(
            ["srun", "bash", "-c", "command -v apptainer singularity | wc -l"], user="kirby"
        ).stdout.split() == ["2"]
