"""The per-node launch of a batch job, for any scheduler: the batch script and the per-node wrapper.

The batch script the scheduler runs (once, on the job's first node) exports the
scheduler-neutral node variables (:data:`dssr_core.NODE_VARIABLES`) from the
scheduler's own, then starts ``launch.sh`` once per node.  ``launch.sh`` sets
``PROCESS_PROCID`` and ``PROCESS_NODENAME``, runs the executor's ``node.sh`` and,
on rank 0, records its exit code (or, with a success marker, whether rank 0's
output holds that line); the batch script exits with it, so the scheduler's own
end state of the job is true.  A scheduler supplies only :class:`NodeLaunch`:
where its variables are and how it starts a task per node.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._shell import command, exports
from ._scratch import LAUNCH_SCRIPT, NODE_SCRIPT, RANK0_LOG, RANK0_RC, JobFiles


@dataclass(frozen=True)
class NodeLaunch:
    """A scheduler's hooks: shell expressions (``"$SLURM_JOB_ID"``...) read inside its jobs.

    The expressions are written into the scripts as they are: they are the connector's own
    constants, never upstream values.
    """

    #: this task's rank, 0 on the job's first node (in ``launch.sh``)
    rank: str
    #: this node's name (in ``launch.sh``)
    node_name: str
    #: the job's id, node list, node count and task count (in the batch script)
    job_id: str
    node_list: str
    node_count: str
    task_count: str
    #: a command printing the job's host names, one per line
    host_names: str
    #: the command running its arguments once on every node of the job; ``{launch}`` stands for
    #: the (quoted) path of ``launch.sh``, e.g. ``srun -N "$SLURM_NNODES" ... bash {launch}``
    per_node: str


def launch_wrapper(hooks: NodeLaunch) -> str:
    """The text of ``launch.sh``: run the job's node script on this node (once per node)."""
    return f"""#!/bin/bash
# jarvice-dssr: run the job's node script on this node (started once per node by the batch script).
export PROCESS_PROCID="{hooks.rank}"
export PROCESS_NODENAME="{hooks.node_name}"
job_dir="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
cd "$job_dir" || exit 1
if [ "$PROCESS_PROCID" != 0 ]; then
    exec bash ./{NODE_SCRIPT}
fi
# tee ignores TERM so that the application's last words on a cancel still reach the output
bash ./{NODE_SCRIPT} 2>&1 | (trap '' TERM; exec tee ./{RANK0_LOG})
rc=${{PIPESTATUS[0]}}
marker="${{DSSR_SUCCESS_MARKER:-}}"
if [ -n "$marker" ]; then
    if grep -qxF -- "$marker" ./{RANK0_LOG}; then
        rc=0
    elif [ "$rc" = 0 ]; then
        rc=1
    fi
fi
echo "$rc" > ./{RANK0_RC}
exit "$rc"
"""


def batch_script(
    files: JobFiles,
    hooks: NodeLaunch,
    gpus_per_node: int,
    success_marker: str | None,
    *,
    directives: str = "",
    setup: str = "",
) -> str:
    """The script the scheduler runs: node variables, ``launch.sh`` once per node, rank 0's exit code.

    ``directives``: the scheduler's own header lines (``#PBS -l ...``), right after ``#!/bin/bash``;
    ``setup``: bash lines run first (e.g. :func:`dssr_core.batch.write_at_start`).  No secret may be in
    either: the scheduler shows a job's script to whoever may see the job.
    """
    settings: dict[str, object] = {"JOB_DIR": files.job_dir, "JOB_GPUS_PER_NODE": gpus_per_node}
    if success_marker:
        settings["DSSR_SUCCESS_MARKER"] = success_marker
    head = directives if not directives or directives.endswith("\n") else directives + "\n"
    start = hooks.per_node.replace("{launch}", '"$JOB_DIR"/' + command(LAUNCH_SCRIPT))
    return f"""#!/bin/bash
{head}# jarvice-dssr batch script: starts the job's node script once per node.
{exports(settings)}
{setup}export JOB_JOBID="{hooks.job_id}"
export JOB_JOB_NODELIST="{hooks.node_list}"
export JOB_NNODES="{hooks.node_count}"
export JOB_NTASKS="{hooks.task_count}"
export JOB_SUBMIT_DIR="$JOB_DIR"
JOB_JOB_FORMATED_NODELIST="$({hooks.host_names} | tr '\\n' ' ')"
export JOB_JOB_FORMATED_NODELIST
rm -f "$JOB_DIR/{RANK0_RC}"
{start}
per_node_rc=$?
if [ -s "$JOB_DIR/{RANK0_RC}" ]; then
    exit "$(cat "$JOB_DIR/{RANK0_RC}")"
fi
[ "$per_node_rc" = 0 ] && per_node_rc=1
exit "$per_node_rc"
"""
