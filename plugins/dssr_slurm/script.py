"""The scripts the connector writes on the cluster for one job.

* the **batch script** given to ``sbatch`` (no secret in it: ``scontrol write
  batch_script`` shows it to anyone allowed to see the job).  It exports the
  scheduler-neutral node variables and starts ``launch.sh`` once per node with
  ``srun``; the job's exit code is rank 0's, so Slurm's own end state is true;
* ``launch.sh`` (in the job folder): the per-node wrapper that sets
  ``PROCESS_*``, runs the executor's ``node.sh`` and, on rank 0, records its
  exit code (or, with a success marker, whether its output holds that line);
* the **submission script**, sent on stdin of one SSH command as the job's
  user: it writes the job folder, the secrets file (mode 0600) and the
  scripts, then runs ``sbatch --hold`` (:func:`dssr_core.submit_once` makes
  the submission happen once: several servers may run this script for one
  job at the same moment, so every file is written to a private name and
  renamed into place, and the folder is made with ``mkdir -p``).
"""

from __future__ import annotations

from dssr_core import command, exports

from .backend import LAUNCH_SCRIPT, SECRETS_FILE, BatchRequest, JobFiles

RANK0_LOG = "rank0.log"
RANK0_RC = "rank0.rc"
#: printed by the submission script before the job id sbatch gave
ID_TAG = "DSSR_JOBID="

LAUNCH = """#!/bin/bash
# jarvice-dssr: run the job's node script on this node (started once per node by srun).
export PROCESS_PROCID="${SLURM_PROCID:-0}"
export PROCESS_NODENAME="${SLURMD_NODENAME:-$(hostname -s)}"
job_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$job_dir" || exit 1
if [ "$PROCESS_PROCID" != 0 ]; then
    exec bash ./node.sh
fi
# tee ignores TERM so that the application's last words on a cancel still reach the output
bash ./node.sh 2>&1 | (trap '' TERM; exec tee ./rank0.log)
rc=${PIPESTATUS[0]}
marker="${DSSR_SUCCESS_MARKER:-}"
if [ -n "$marker" ]; then
    if grep -qxF -- "$marker" ./rank0.log; then
        rc=0
    elif [ "$rc" = 0 ]; then
        rc=1
    fi
fi
echo "$rc" > ./rank0.rc
exit "$rc"
"""


def batch_script(
    files: JobFiles,
    gpus_per_node: int,
    success_marker: str | None,
    embed: tuple[str, list[str]] | None = None,
) -> str:
    """The script ``sbatch`` runs: node variables, one ``srun`` of ``launch.sh`` per node, rank 0's exit code.

    ``embed`` = (node script, names of secret variables): the script writes the
    job folder itself when the job starts (slurmrestd submissions, where no
    shell as the user is available beforehand); the secrets then come in the
    job's environment and are moved into the secrets file, never into the text.
    """
    settings: dict[str, object] = {"JOB_DIR": files.job_dir, "JOB_GPUS_PER_NODE": gpus_per_node}
    if success_marker:
        settings["DSSR_SUCCESS_MARKER"] = success_marker
    setup = ""
    if embed is not None:
        node_script, secret_names = embed
        for name in secret_names:
            if not name.isidentifier():
                raise ValueError(f"not a shell variable name: {name!r}")
        secret_lines = "".join(f"    printf 'export %s=%q\\n' {name} \"${{{name}:-}}\"\n" for name in secret_names)
        setup = (
            'mkdir -p "$JOB_DIR"\nchmod 2770 "$JOB_DIR"\n'
            f'(umask 077; {{\n{secret_lines}    :\n}} > "$JOB_DIR/{SECRETS_FILE}")\n'
            + "".join(f"unset {name}\n" for name in secret_names)
            + _heredoc(files.node_script, node_script, "NODE")
            + _heredoc(files.launch_script, LAUNCH, "LAUNCH")
        )
    return f"""#!/bin/bash
# jarvice-dssr batch script: starts the job's node script once per node.
{exports(settings)}
{setup}export JOB_JOBID="$SLURM_JOB_ID"
export JOB_JOB_NODELIST="$SLURM_JOB_NODELIST"
export JOB_NNODES="$SLURM_NNODES"
export JOB_NTASKS="${{SLURM_NTASKS:-$SLURM_NNODES}}"
export JOB_SUBMIT_DIR="$JOB_DIR"
JOB_JOB_FORMATED_NODELIST="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | tr '\\n' ' ')"
export JOB_JOB_FORMATED_NODELIST
rm -f "$JOB_DIR/{RANK0_RC}"
srun --kill-on-bad-exit=1 -N "$SLURM_NNODES" -n "$SLURM_NNODES" --ntasks-per-node=1 bash "$JOB_DIR/{LAUNCH_SCRIPT}"
srun_rc=$?
if [ -s "$JOB_DIR/{RANK0_RC}" ]; then
    exit "$(cat "$JOB_DIR/{RANK0_RC}")"
fi
[ "$srun_rc" = 0 ] && srun_rc=1
exit "$srun_rc"
"""


def _heredoc(path: str, text: str, tag: str) -> str:
    """Shell lines writing ``text`` to ``path`` through a quoted here-document (no expansion)."""
    delimiter = f"DSSR_{tag}_EOF"
    while delimiter in text:
        delimiter += "_"
    body = text if text.endswith("\n") else text + "\n"
    return f"cat > {command(path)} <<'{delimiter}'\n{body}{delimiter}\n"


def _write_builtin(path: str, text: str, tag: str) -> str:
    """Like :func:`_heredoc` with bash builtins only (no process started: submissions stay fast).

    The text goes to a name private to this shell (``$HOSTNAME.$$``), then is renamed over
    ``path``: a server writing the same job's files at the same moment, or a job already
    reading them, never sees a half-written file."""
    delimiter = f"DSSR_{tag}_EOF"
    while delimiter in text:
        delimiter += "_"
    body = text if text.endswith("\n") else text + "\n"
    temp = command(path) + '".$HOSTNAME.$$"'
    return (
        f"IFS= read -r -d '' content <<'{delimiter}' || true\n{body}{delimiter}\n"
        f"printf '%s' \"$content\" > {temp}\n"
        f"mv -f {temp} {command(path)}\n"
    )


def submission_script(request: BatchRequest, files: JobFiles, node_script: str, secrets: dict[str, str]) -> str:
    """The script run (as the job's user, fed on stdin to ``bash -s``) to write the job's files and
    submit it (with ``request.hold``: :func:`dssr_core.submit_once` sends it held)."""
    sbatch = command("sbatch", request.sbatch_options(), files.job_dir + "/batch.sh")
    # A held job is never checked against the nodes (Slurm 22.05-26.05 accept --hold with more GPUs
    # than any node has and leave it pending for BadConstraints), so ask Slurm first whether the
    # job could ever run, and refuse it in sbatch's own words when it could not.
    trial = command("sbatch", "--test-only", request.sbatch_options(), files.job_dir + "/batch.sh")
    parts = [
        "set -e\n",
        "trap '' HUP PIPE\n",  # a dropped connection must not stop the script half-way
        "umask 007\n",
        f"mkdir -p {command(files.job_dir)}\n",  # 0770 by the umask (setgid inherited in a group layout)
        "umask 077\n",  # the secrets file: the user only
        _write_builtin(files.secrets_file, exports(secrets) if secrets else "# no secrets", "SECRETS"),
        "umask 007\n",  # the rest (and the job output): readable by the service user's group
        _write_builtin(files.node_script, node_script, "NODE"),
        _write_builtin(files.launch_script, LAUNCH, "LAUNCH"),
        _write_builtin(files.job_dir + "/batch.sh", request.script, "BATCH"),
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
