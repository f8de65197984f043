"""Slurm's parts of a job's scripts, on the scheduler-neutral ones of :mod:`dssr_core.scratch` and
:mod:`dssr_core.nodelaunch`.

* the **batch script** given to ``sbatch`` (no secret in it: ``scontrol write
  batch_script`` shows it to anyone allowed to see the job): Slurm's variables as
  the node variables, ``launch.sh`` once per node with ``srun`` (:data:`SLURM`);
* the **submission script**, sent on stdin of one SSH command as the job's user:
  the whole submit-once protocol (:func:`dssr_core.batch.once_script`) with Slurm's
  commands; when no job of the name exists it writes the job folder
  (:func:`dssr_core.batch.write_job_files`), asks ``sbatch --test-only`` whether any
  node can run the job, and runs ``sbatch --hold``.  Several servers may run it
  for one job at the same moment.
"""

from __future__ import annotations

from dataclasses import replace

from dssr_core import command
from dssr_core.batch import (
    JobFiles,
    NodeLaunch,
    OnceCommands,
    launch_wrapper,
    once_script,
    write_at_start,
    write_job_files,
)
from dssr_core.batch import batch_script as neutral_batch_script

from .backend import BatchRequest
from .states import GONE_WORDS, QUEUED, RUNNING

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
    """The script ``sbatch`` runs (:func:`dssr_core.batch.batch_script` with Slurm's hooks).

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


def submission_script(
    request: BatchRequest,
    files: JobFiles,
    node_script: str,
    secrets: dict[str, str],
    *,
    keep_held: bool = False,
    test_first: bool = True,
) -> str:
    """The one script, run as the job's user (sent with :func:`dssr_core.batch.script_command`), that submits the job exactly
    once: :func:`dssr_core.batch.once_script` with Slurm's commands (:func:`once_commands`).  It prints
    :data:`dssr_core.batch.ONCE_TAG` with the job's id (read it with :func:`dssr_core.batch.parse_once_output`)."""
    commands = once_commands(request, files, node_script, secrets, test_first=test_first)
    return once_script(commands, keep_held=keep_held)


def once_commands(
    request: BatchRequest, files: JobFiles, node_script: str, secrets: dict[str, str], *, test_first: bool = True
) -> OnceCommands:
    """Slurm's steps of the submit-once script, as ``request.user`` (who always sees their own jobs).

    * maybe exists: the job's folder exists (it is written before any submission of the name and
      removed only once the job has ended), else the first ``squeue`` is skipped;
    * find: ``squeue`` of the name and user, every state (a held job is PENDING for ``JobHeldUser``;
      a job is unfinished in the states :mod:`dssr_slurm.states` lists as running or queued);
    * submit held: write the job's folder (:func:`dssr_core.batch.write_job_files`) in the background
      while, with ``test_first`` (a request the cluster's shape could not judge, :mod:`dssr_slurm.shape`),
      ``sbatch --test-only`` says whether any node can ever run the job, and ``sbatch --hold`` submits
      it (the batch script on its standard input); the step ends once the folder is whole, so every
      caller that releases a job of the name has seen its folder whole (its own writer finished, or
      the folder existed: it only appears whole, by one rename), and a job never starts without it;
    * cancel: ``scancel`` (a job already gone is not an error); release: ``scontrol release``.
    """
    held = replace(request, hold=True)
    # sbatch reads the batch script on its standard input (the same text as batch.sh), so that it need
    # not wait for the job's folder, which is written meanwhile
    script_in = '<<<"$batch"'
    sbatch = command("sbatch", held.sbatch_options()) + " " + script_in
    # A held job is never checked against the nodes (Slurm 22.05-26.05 accept --hold with more GPUs
    # than any node has and leave it pending for BadConstraints), so ask Slurm first whether the
    # job could ever run, and refuse it in sbatch's own words when it could not.
    trial = command("sbatch", "--test-only", held.sbatch_options()) + " " + script_in
    squeue = command("squeue", "-h", "-t", "all", "-u", request.user, "-n", request.name, "-o", "%i %T %r")
    unfinished = "|".join(sorted(RUNNING | QUEUED))
    find = (
        "local out id state reason held finished\n"
        f"out=$({squeue}) || return 1\n"
        "while read -r id state reason; do\n"
        "    case $id in ''|*[!0-9]*) continue ;; esac\n"
        f"    case $state in {unfinished}) finished=0 ;; *) finished=1 ;; esac\n"
        "    held=0\n"
        '    if [ "$state" = PENDING ] && [ "$reason" = JobHeldUser ]; then held=1; fi\n'
        '    printf \'%s %s %s %s\\n\' "$id" "$id" "$held" "$finished"\n'
        'done <<<"$out"\n'
    )
    write = write_job_files(
        files,
        secrets,
        {files.node_script: node_script, files.launch_script: LAUNCH, files.batch_script: request.script},
    )
    submit = "".join(
        [
            # the job's folder is written while Slurm is asked (two processes less on the critical path);
            # this step ends only once it is whole, before any listing, so before any release
            f"(\n{write}) >/dev/null &\n",
            "# the batch script's text, single-quoted so that nothing in it expands\n# shellcheck disable=SC2016\n",
            f"batch={command(request.script.removesuffix(chr(10)))}\n",
            "writer=$!\n",
            (
                f"if ! trial=$({trial} 2>&1); then\n"
                "    printf 'sbatch: error: %s\\n' \"${trial##*$'\\n'}\" >&2\n"
                "    exit 1\n"
                "fi\n"
            )
            if test_first
            else "",
            f"jobid=$({sbatch})\n",
            "jobid=${jobid%%;*}\n",
            'if ! wait "$writer"; then\n',
            '    scancel "$jobid" || true\n',
            '    echo "submit-once: writing the job\'s folder failed: job $jobid cancelled" >&2\n',
            "    exit 1\n",
            "fi\n",
            'echo "$jobid"\n',
        ]
    )
    gone = "|".join(f'*"{words}"*' for words in GONE_WORDS)
    cancel = (
        "local out\n"
        'out=$(scancel "$@" 2>&1) && return 0\n'
        f"case ${{out,,}} in {gone}) return 0 ;; esac\n"
        "printf '%s\\n' \"$out\" >&2\n"
        "return 1\n"
    )
    return OnceCommands(
        find=find,
        submit_held=submit,
        cancel=cancel,
        release='scontrol release "$1"\n',
        maybe_exists=f"[ -e {command(files.job_dir)} ]\n",
    )
