"""A local job's folder, written before its record may start: node script, secrets, launch plan."""

from __future__ import annotations

import shutil
from pathlib import Path

from dssr_core import ClusterError, Executor, JobSpec, LaunchContext, exports

from .host import node_environment
from .jobfiles import NODE_SCRIPT, SECRETS_FILE, LaunchPlan, write_atomic
from .settings import LocalSettings


def prepare_job(
    local: LocalSettings, hostname: str, user: str, jobid: int, job_dir: Path, spec: JobSpec, executor: Executor
) -> str:
    """Write the job's folder; returns the node script (without secrets: they are in their 0600 file)."""
    if job_dir.exists():  # left over from a database that was removed
        shutil.rmtree(job_dir)
    job_dir.mkdir(mode=0o700, parents=True)
    ctx = LaunchContext(
        scratch_root=str(local.state_dir),
        cluster_user=user,
        user_scratch=str(local.data_dir),
        job_dir=str(job_dir),
        secrets_file=str(job_dir / SECRETS_FILE),
    )
    launch = executor.launch(spec, ctx)
    if launch.secrets:
        try:
            text = exports(launch.secrets)
        except ValueError:
            raise ClusterError(
                f"The executor {executor.name!r} gave a secret with an invalid name.", transient=False
            ) from None
        write_atomic(job_dir / SECRETS_FILE, text + "\n", mode=0o600)
    write_atomic(job_dir / NODE_SCRIPT, launch.node_script, mode=0o700)
    LaunchPlan(spec.nodes, node_environment(hostname, jobid, job_dir, spec), launch.success_marker).save(job_dir)
    return launch.node_script
