"""Slurm's parts of a job's scripts, on the scheduler-neutral ones of :mod:`dssr_core.scratch` and
:mod:`dssr_core.nodelaunch`.

* the **batch script** given to ``sbatch`` (no secret in it: ``scontrol write
  batch_script`` shows it to anyone allowed to see the job): Slurm's variables as
  the node variables, ``launch.sh`` once per node with ``srun`` (:data:`SLURM`);
* the **submission script**, sent on stdin of one SSH command as the job's user:
  it writes the job folder (:func:`dssr_core.write_job_files`), asks
  ``sbatch --test-only`` whether any node can run the job, then runs
  ``sbatch --hold`` (:func:`dssr_core.submit_once` makes the submission happen
  once, and several servers may run this script for one job at the same moment).
"""

from __future__ import annotations

from dssr_core import JobFiles, NodeLaunch, command, launch_wrapper, write_at_start, write_job_files
from dssr_core import batch_script as neutral_batch_script

from .backend import BatchRequest

#: printed by the submission script before the job id sbatch gave
ID_TAG = "DSSR_JOBID="

#: Slurm's hooks of the scheduler-neutral per-node launch (dssr_core.nodelaunch): its variables, and
#: one ``srun`` task per node (the job's exit code is rank 0's: --kill-on-bad-exit stops the others)
SLURM = NodeLaunch(
    rank="${SLURM_PROCID:-0}",
    node_name="${SLURMD_NODENAME:-$(hostname -s)}",
    job_id="$SLURM_JOB_ID",
    node_list="$SLURM_JOB_NODELIST",
    node_count="$SLURM_NNODES",
    task_count="${SLURM_NTASKS:-$SLURM_NNODES}",
    host_names='scontrol show hostnames "$SLURM_JOB_NODELIST"',
    per_node='srun --kill-on-bad-exit=1 -N "$SLURM_NNODES" -n "$SLURM_NNODES" --ntasks-per-node=1 bash {launch}',
)
LAUNCH = launch_wrapper(SLURM)


def batch_script(
    files: JobFiles,
    gpus_per_node: int,
    success_marker: str | None,
    embed: tuple[str, list[str]] | None = None,
) -> str:
    """The script ``sbatch`` runs (:func:`dssr_core.batch_script` with Slurm's hooks).

    ``embed`` = (node script, names of secret variables): the script writes the
    job folder itself when the job starts (slurmrestd submissions, where no
    shell as the user is available beforehand); the secrets then come in the
    job's environment and are moved into the secrets file, never into the text.
    """
    setup = ""
    if embed is not None:
        node_script, secret_names = embed
        setup = write_at_start(files, secret_names, {files.node_script: node_script, files.launch_script: LAUNCH})
    return neutral_batch_script(files, SLURM, gpus_per_node, success_marker, setup=setup)


def submission_script(request: BatchRequest, files: JobFiles, node_script: str, secrets: dict[str, str]) -> str:
    """The script run (as the job's user, fed on stdin to ``bash -s``) to write the job's files and
    submit it (with ``request.hold``: :func:`dssr_core.submit_once` sends it held)."""
    sbatch = command("sbatch", request.sbatch_options(), files.batch_script)
    # A held job is never checked against the nodes (Slurm 22.05-26.05 accept --hold with more GPUs
    # than any node has and leave it pending for BadConstraints), so ask Slurm first whether the
    # job could ever run, and refuse it in sbatch's own words when it could not.
    trial = command("sbatch", "--test-only", request.sbatch_options(), files.batch_script)
    parts = [
        "set -e\n",
        "trap '' HUP PIPE\n",  # a dropped connection must not stop the script half-way
        write_job_files(
            files,
            secrets,
            {files.node_script: node_script, files.launch_script: LAUNCH, files.batch_script: request.script},
        ),
        f"if ! trial=$({trial} 2>&1); then\n"
        "    printf 'sbatch: error: %s\\n' \"${trial##*$'\\n'}\" >&2\n"
        "    exit 1\n"
        "fi\n",
        f"jobid=$({sbatch})\n",
        "jobid=${jobid%%;*}\n",
        f'echo "{ID_TAG}$jobid"\n',
    ]
    return "".join(parts)


def parse_submission_output(stdout: str) -> str | None:
    """The job id the submission script printed; None when it printed none."""
    for line in stdout.splitlines():
        if line.startswith(ID_TAG):
            jobid = line[len(ID_TAG) :].strip()
            if jobid.isdigit():
                return jobid
    return None
