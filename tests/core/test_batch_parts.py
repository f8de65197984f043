"""The scheduler-neutral parts of a batch connector (dssr_core.scratch, dssr_core.nodelaunch), run here
with bash and without any scheduler: what a PBS or LSF connector reuses as it is.

The "scheduler" below is a stand-in: a bash function that runs its arguments once per node with a
rank and a node name in variables of its own, as a scheduler's per-node launcher would."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from dssr_core.batch import (
    NodeLaunch,
    ScratchLayout,
    batch_script,
    launch_wrapper,
    script_command,
    write_at_start,
    write_job_files,
)

SECRET = "hunter2-registry-password"
#: hooks of an imaginary scheduler "toy": TOY_* variables, a per-node loop standing in for its launcher
TOY = NodeLaunch(
    rank="${TOY_RANK:-0}",
    node_name="${TOY_NODE:-$(hostname -s)}",
    job_id="$TOY_JOBID",
    node_list="$TOY_NODES",
    node_count="$TOY_NNODES",
    task_count="$TOY_NNODES",
    host_names='printf "%s\\n" $TOY_NODES',
    per_node='for r in $(seq 0 $((TOY_NNODES - 1))); do TOY_RANK=$r TOY_NODE=n$r bash {launch} || rc=$?; done; (exit "${rc:-0}")',
)


def layout(tmp_path: Path) -> ScratchLayout:
    return ScratchLayout(str(tmp_path / "scratch"))


def test_the_layout_puts_each_users_jobs_under_users_and_their_files_in_the_job_folder(tmp_path: Path) -> None:
    files = layout(tmp_path).files("kirby", "toy_job-1")
    root = str(tmp_path / "scratch")
    assert files.user_scratch == f"{root}/users/kirby"
    assert files.job_dir == f"{root}/users/kirby/toy_job-1"
    assert files.output == f"{root}/users/kirby/toy_job-1.out"
    assert (files.node_script, files.launch_script, files.batch_script, files.secrets_file) == tuple(
        f"{root}/users/kirby/toy_job-1/{name}" for name in ("node.sh", "launch.sh", "batch.sh", ".secrets.env")
    )


def test_a_relative_scratch_root_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        ScratchLayout("scratch")


def test_removal_removes_the_folder_and_output_and_nothing_else(tmp_path: Path) -> None:
    files = layout(tmp_path).files("kirby", "toy_job-1")
    Path(files.job_dir).mkdir(parents=True)
    Path(files.node_script).write_text("x")
    Path(files.output).write_text("out")
    other = Path(files.user_scratch) / "toy_job-2.out"
    other.write_text("keep")
    for _ in range(2):  # a second run (already gone) succeeds too
        subprocess.run(["bash", "-c", layout(tmp_path).removal("kirby", "toy_job-1")], check=True)
    assert sorted(os.listdir(files.user_scratch)) == ["toy_job-2.out"]


def test_job_files_are_written_whole_with_the_secrets_only_in_a_private_file(tmp_path: Path) -> None:
    files = layout(tmp_path).files("kirby", "toy_job-1")
    Path(files.user_scratch).mkdir(parents=True)
    text = write_job_files(
        files, {"TOKEN": SECRET}, {files.node_script: "echo 'it''s' $HOME\n", files.batch_script: "#!/bin/bash\n"}
    )
    subprocess.run(["bash", "-s"], input=text, text=True, check=True)
    assert Path(files.node_script).read_text() == "echo 'it''s' $HOME\n"  # written as given, nothing expanded
    assert Path(files.batch_script).read_text() == "#!/bin/bash\n"
    assert stat.S_IMODE(os.stat(files.secrets_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files.job_dir).st_mode) & 0o070 == 0o070  # the service user's group reads it
    out = subprocess.run(["bash", "-c", f'. {files.secrets_file}; printf %s "$TOKEN"'], capture_output=True, text=True)
    assert out.stdout == SECRET
    assert sorted(os.listdir(files.job_dir)) == [".secrets.env", "batch.sh", "node.sh"]  # no temporary left


def test_a_job_folder_that_exists_gets_every_file_replaced_whole_and_no_private_folder_is_left(tmp_path: Path) -> None:
    files = layout(tmp_path).files("kirby", "toy_job-1")
    Path(files.job_dir).mkdir(parents=True)
    Path(files.node_script).write_text("old\n")
    Path(files.job_dir, "rank0.log").write_text("kept\n")
    text = write_job_files(files, {}, {files.node_script: "new\n"})
    subprocess.run(["bash", "-c", "set -e\n" + text], check=True)
    assert Path(files.node_script).read_text() == "new\n"
    assert sorted(os.listdir(files.job_dir)) == [".secrets.env", "node.sh", "rank0.log"]
    assert os.listdir(files.user_scratch) == ["toy_job-1"]


def test_writers_racing_for_one_job_leave_one_whole_folder(tmp_path: Path) -> None:
    """Eight shells write the same job at the same moment, as eight replicas' submissions would."""
    files = layout(tmp_path).files("kirby", "toy_job-1")
    node = "echo node\n" * 2000  # 20 KB, several writes each
    text = "set -e\n" + write_job_files(files, {"TOKEN": SECRET}, {files.node_script: node, files.batch_script: "b\n"})
    for _ in range(5):
        writers = [subprocess.Popen(["bash", "-c", text]) for _ in range(8)]
        assert [w.wait(timeout=60) for w in writers] == [0] * 8
        assert Path(files.node_script).read_text() == node
        assert sorted(os.listdir(files.job_dir)) == [".secrets.env", "batch.sh", "node.sh"]
        assert os.listdir(files.user_scratch) == ["toy_job-1"]
        subprocess.run(["bash", "-c", layout(tmp_path).removal("kirby", "toy_job-1")], check=True)


def test_removal_also_removes_the_private_folder_of_a_writer_killed_half_way(tmp_path: Path) -> None:
    files = layout(tmp_path).files("kirby", "toy_job-1")
    Path(files.user_scratch, ".toy_job-1.write.host.123").mkdir(parents=True)
    Path(files.user_scratch, ".toy_job-10.write.host.123").mkdir()  # another job's
    subprocess.run(["bash", "-c", layout(tmp_path).removal("kirby", "toy_job-1")], check=True)
    assert os.listdir(files.user_scratch) == [".toy_job-10.write.host.123"]


def test_a_script_sent_with_script_command_runs_whole_or_not_at_all(tmp_path: Path) -> None:
    marks = [tmp_path / f"mark{i}" for i in range(3)]
    text = "".join(f"touch {m}\n" for m in marks) + "echo café; exit 3\n"  # more bytes than characters
    remote, data = script_command(text)
    utf8 = {**os.environ, "LC_ALL": "C.UTF-8"}
    done = subprocess.run(["sh", "-c", remote], input=data, capture_output=True, env=utf8)
    assert (done.returncode, done.stdout.decode()) == (3, "café\n")
    assert all(m.exists() for m in marks)
    for m in marks:
        m.unlink()
    cut = subprocess.run(["sh", "-c", remote], input=data[: len(data) // 2], capture_output=True, env=utf8)
    assert cut.returncode != 0 and not any(m.exists() for m in marks)  # nothing of a script cut short ran


def run_job(tmp_path: Path, node_script: str, *, marker: str | None = None, at_start: bool = False) -> tuple[int, str]:
    """The batch script with TOY's hooks, as a "toy" scheduler would run it on a 2-node job."""
    files = layout(tmp_path).files("kirby", "toy_job-1")
    setup = ""
    env = {**os.environ, "TOY_JOBID": "77", "TOY_NODES": "n0 n1", "TOY_NNODES": "2"}
    scripts = {files.node_script: node_script, files.launch_script: launch_wrapper(TOY)}
    if at_start:  # the job writes its own folder; the secret comes in its environment
        setup = write_at_start(files, ["TOKEN"], scripts)
        env["TOKEN"] = SECRET
        Path(files.user_scratch).mkdir(parents=True, exist_ok=True)
    else:
        subprocess.run(["bash", "-s"], input=write_job_files(files, {"TOKEN": SECRET}, scripts), text=True, check=True)
    text = batch_script(files, TOY, 1, marker, directives="#TOY -l nodes=2", setup=setup)
    assert SECRET not in text and text.startswith("#!/bin/bash\n#TOY -l nodes=2\n")
    result = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout


def test_every_node_gets_the_node_variables_from_the_schedulers_own(tmp_path: Path) -> None:
    rc, out = run_job(
        tmp_path,
        'echo "$PROCESS_PROCID/$PROCESS_NODENAME/$JOB_JOBID/$JOB_NNODES/$JOB_NTASKS/'
        '$JOB_JOB_FORMATED_NODELIST/$JOB_GPUS_PER_NODE/$JOB_SUBMIT_DIR"\n',
    )
    job_dir = layout(tmp_path).job_dir("kirby", "toy_job-1")
    assert rc == 0
    assert f"0/n0/77/2/2/n0 n1 /1/{job_dir}" in out and f"1/n1/77/2/2/n0 n1 /1/{job_dir}" in out


def test_the_job_ends_with_rank_0s_exit_code_and_rank_0_output_is_kept(tmp_path: Path) -> None:
    rc, _ = run_job(tmp_path, 'echo "rank $PROCESS_PROCID"; [ "$PROCESS_PROCID" = 0 ] && exit 7; exit 0\n')
    job_dir = Path(layout(tmp_path).job_dir("kirby", "toy_job-1"))
    assert rc == 7
    assert (job_dir / "rank0.rc").read_text().strip() == "7" and (job_dir / "rank0.log").read_text() == "rank 0\n"


def test_with_a_success_marker_rank_0_succeeds_only_when_it_printed_it(tmp_path: Path) -> None:
    assert run_job(tmp_path / "a", "echo working\n", marker="JOB DONE")[0] == 1
    assert run_job(tmp_path / "b", "echo JOB DONE; exit 3\n", marker="JOB DONE")[0] == 0


def test_a_job_that_writes_its_own_folder_gets_its_secret_in_the_private_file_only(tmp_path: Path) -> None:
    rc, out = run_job(
        tmp_path, '. ./.secrets.env; [ -n "$TOKEN" ] && echo "rank $PROCESS_PROCID has it"\n', at_start=True
    )
    files = layout(tmp_path).files("kirby", "toy_job-1")
    assert rc == 0 and "rank 0 has it" in Path(files.job_dir, "rank0.log").read_text()
    assert stat.S_IMODE(os.stat(files.secrets_file).st_mode) == 0o600
    assert SECRET not in Path(files.node_script).read_text() + Path(files.launch_script).read_text()
