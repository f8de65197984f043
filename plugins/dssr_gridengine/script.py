"""Grid Engine's parts of a job's scripts, on the scheduler-neutral ones of dssr_core.

* the **batch script** (``batch.sh``, given to ``qsub``): Grid Engine's variables as the node
  variables, then ``launch.sh`` once on every host of the job's parallel environment with
  ``qrsh -inherit`` (tight integration: the tasks are the job's, accounted and killed with it);
  the job's exit code is rank 0's;
* the **submission script**, run as the job's user (:func:`dssr_core.batch.script_command`): writes the job folder
  (:func:`dssr_core.batch.write_job_files`) and submits the job held, ``qsub -w e`` refusing a job no
  queue could ever run (:func:`dssr_core.batch.submit_once` makes the submission happen once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from dssr_core import command
from dssr_core.batch import JobFiles, NodeLaunch, launch_wrapper, write_job_files
from dssr_core.batch import batch_script as neutral_batch_script

#: printed by the submission script before the job id qsub gave
ID_TAG = "DSSR_JOBID="
#: written in the job folder when the job starts: which Grid Engine job ran there
JOBID_FILE = "ge.jobid"
#: written in the job folder by ``terminate`` (a job deleted before it started leaves no accounting)
CANCELLED_FILE = ".dssr-cancelled"

GRID_ENGINE = NodeLaunch(
    rank="${DSSR_GE_RANK:-0}",
    node_name="$(hostname -s)",
    job_id="$JOB_ID",
    node_list='$(cut -d" " -f1 "$PE_HOSTFILE" | paste -sd, -)',
    node_count="$NHOSTS",
    task_count="$NHOSTS",
    host_names='cut -d" " -f1 "$PE_HOSTFILE"',
    per_node="dssr_ge_per_node {launch}",
)
LAUNCH = launch_wrapper(GRID_ENGINE)

#: One task per host of $PE_HOSTFILE (allocation_rule 1: one slot each), ranks in the file's order (the
#: master host first).  ``qrsh -inherit`` joins its arguments into one command line for a shell on the
#: host, hence the %q quoting; -V passes the node variables.  Rank 0's end ends the job (like srun's
#: --kill-on-bad-exit, Grid Engine stops the other tasks when the batch script exits).
PER_NODE = f"""echo "$JOB_ID" > "$JOB_DIR/{JOBID_FILE}"
dssr_ge_per_node() {{
    local i=0 host rc=0 pids=()
    for host in $(cut -d" " -f1 "$PE_HOSTFILE"); do
        qrsh -inherit -nostdin -V "$host" "DSSR_GE_RANK=$i bash $(printf %q "$1")" &
        pids+=($!)
        i=$((i + 1))
    done
    wait "${{pids[0]}}" || rc=$?
    if [ "$rc" = 0 ]; then
        for pid in "${{pids[@]:1}}"; do wait "$pid" || true; done
    fi
    return "$rc"
}}
"""


@dataclass(frozen=True)
class QsubRequest:
    """A batch job in ``qsub`` terms (every value already validated; quoted when the command is built)."""

    name: str
    output: str
    workdir: str
    pe: str
    nodes: int
    queue: str | None = None
    #: ``-l`` resources: name -> value
    resources: Mapping[str, str] = field(default_factory=dict)
    #: extra ``-<flag> <value>`` options
    extra: Mapping[str, str] = field(default_factory=dict)

    def options(self) -> list[str]:
        opts = ["-terse", "-w", "e", "-h", "-N", self.name, "-o", self.output, "-j", "y", "-wd", self.workdir]
        opts += ["-S", "/bin/bash", "-pe", self.pe, str(self.nodes)]
        if self.queue:
            opts += ["-q", self.queue]
        if self.resources:
            opts += ["-l", ",".join(f"{k}={v}" for k, v in self.resources.items())]
        for flag, value in self.extra.items():
            opts += [f"-{flag}", value]
        return opts


def batch_script(files: JobFiles, gpus_per_node: int, success_marker: str | None) -> str:
    """The script ``qsub`` runs (:func:`dssr_core.batch.batch_script` with Grid Engine's hooks)."""
    return neutral_batch_script(files, GRID_ENGINE, gpus_per_node, success_marker, setup=PER_NODE)


def submission_script(request: QsubRequest, files: JobFiles, scripts: dict[str, str], secrets: dict[str, str]) -> str:
    """The script run as the job's user (:func:`dssr_core.batch.script_command`): write the job's files, submit it held."""
    return "".join(
        [
            "set -e\n",
            "trap '' HUP PIPE\n",  # a dropped connection must not stop the script half-way
            write_job_files(files, secrets, {files.launch_script: LAUNCH, **scripts}),
            f"rm -f {command(files.job_dir + '/' + CANCELLED_FILE)}\n",
            f"if ! jobid=$({command('qsub', request.options(), files.batch_script)} 2>&1); then\n"
            "    printf 'qsub: error: %s\\n' \"$jobid\" | tr '\\n' ' ' >&2\n"
            "    exit 1\n"
            "fi\n",
            f'echo "{ID_TAG}$jobid"\n',
        ]
    )


def parse_submission_output(stdout: str) -> str | None:
    """The job id the submission script printed; None when it printed none."""
    for line in stdout.splitlines():
        if line.startswith(ID_TAG):
            jobid = line[len(ID_TAG) :].strip()
            if jobid.isdigit():
                return jobid
    return None
