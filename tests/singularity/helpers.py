"""Helpers for the executor's tests: settings, launch contexts, templates, and node runs with the stand-in."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dssr_core import JobSpec, Launch, LaunchContext, Settings
from dssr_core._shell import exports
from dssr_core._upstream import parse_template
from dssr_singularity import SingularityExecutor

STANDIN_DIR = Path(__file__).resolve().parents[1] / "standin"
STANDIN = STANDIN_DIR / "apptainer"

SYSTEM = {
    "JARVICE_SYSTEM_REGISTRY": "us-docker.pkg.dev",
    "JARVICE_SYSTEM_REPO_BASE": "jarvice-system/images",
    "JARVICE_IMAGES_TAG": "jarvice-3.24.5-amd64",
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def executor(**env: str) -> SingularityExecutor:
    return SingularityExecutor(Settings({**SYSTEM, **env}))


def context(root: Path, user: str = "kirby", job: str = "job1") -> LaunchContext:
    user_scratch = root / "users" / user
    job_dir = user_scratch / ".jarvice" / "jobs" / job
    job_dir.mkdir(parents=True, exist_ok=True)
    return LaunchContext(
        scratch_root=str(root),
        cluster_user=user,
        user_scratch=str(user_scratch),
        job_dir=str(job_dir),
        secrets_file=str(user_scratch / ".jarvice" / f"{job}.secrets"),
    )


def template_text(
    *,
    cmd: str = "/bin/echo hello",
    repo: str = "docker.io/library/ubuntu:24.04",
    arch: str = "amd64",
    devices: str = "",
    gpus: int = 0,
    body: str = "",
    ctrsecret: Mapping[str, Any] | None = None,
    docker_secret: Mapping[str, str] | None = None,
    appdef: int = 2,
) -> str:
    lines = [
        "#!/bin/bash",
        "{DOWNSTREAM_PARAMETERS}",
        ": <<'JOBOBJ_KEYS'",
        f"JOBOBJ_APPDEFVERSION={appdef}",
        "JOBOBJ_INTERACTIVE=False",
        f"JOBOBJ_ARCH={arch}",
        "JOBOBJ_NAE=ubuntu-app",
        f"JOBOBJ_REPO={repo}",
        "JOBOBJ_USER=kirby",
        f"JOBOBJ_GPUS={gpus}",
        "JARVICE_CPU_CORES=1",
        f"JARVICE_CMD={cmd}",
    ]
    if devices:
        lines.append(f"JOBOBJ_DEVICES={devices}")
    if ctrsecret is not None:
        lines.append("JOBOBJ_CTRSECRET=" + b64(json.dumps({"auths": ctrsecret})))
    if docker_secret is not None:
        lines.append("JOBOBJ_DOCKER_SECRET=" + json.dumps(docker_secret).replace("{", "{{").replace("}", "}}"))
    lines.append("JOBOBJ_KEYS")
    lines.append(body or 'echo "JARVICE_CMD_SUCCESS"')
    return "\n".join(lines) + "\n"


def template_spec(nodes: int = 1, **kwargs: Any) -> JobSpec:
    return parse_template(template_text(**kwargs), nodes, "tjob", 1)


def native_spec(**kwargs: Any) -> JobSpec:
    values: dict[str, Any] = {"name": "njob", "image": "docker.io/library/ubuntu:24.04", "command": "echo hello"}
    values.update(kwargs)
    return JobSpec(**values)


def write_secrets(launch: Launch, ctx: LaunchContext) -> None:
    """What a connector does before submission: the secrets as export lines, mode 0600."""
    path = Path(ctx.secrets_file)
    path.write_text(exports(launch.secrets) + "\n")
    path.chmod(0o600)


def standin_path(tmp: Path, names: tuple[str, ...] = ("apptainer", "singularity")) -> str:
    """A PATH with the stand-in under ``names`` first (and the system tools after it)."""
    bindir = tmp / "standin-bin"
    bindir.mkdir(exist_ok=True)
    for name in names:
        link = bindir / name
        if not link.exists():
            link.symlink_to(STANDIN)
    return f"{bindir}:/usr/bin:/bin"


@dataclass
class NodeRun:
    rank: int
    rc: int
    output: str


def start_nodes(
    launch: Launch, ctx: LaunchContext, path: str, nodes: int = 2, env: Mapping[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """Run the node script once per node, concurrently, with the node variables a connector sets."""
    script = Path(ctx.job_dir) / "node.sh"
    script.write_text(launch.node_script)
    names = " ".join(f"node{i + 1}" for i in range(nodes))
    procs = []
    for rank in range(nodes):
        node_env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", "/root"),
            "USER": ctx.cluster_user,
            "PROCESS_PROCID": str(rank),
            "PROCESS_NODENAME": f"node{rank + 1}",
            "JOB_JOBID": "42",
            "JOB_JOB_NODELIST": f"node[1-{nodes}]",
            "JOB_JOB_FORMATED_NODELIST": names,
            "JOB_NNODES": str(nodes),
            "JOB_NTASKS": str(nodes),
            "JOB_SUBMIT_DIR": ctx.job_dir,
            "JOB_GPUS_PER_NODE": "",
            "DSSR_STANDIN_PULL_SECONDS": "0.3",
            **(env or {}),
        }
        # a restrictive umask, as cluster users often have (the job inherits the submitter's)
        procs.append(
            subprocess.Popen(
                ["bash", str(script)],
                cwd=ctx.job_dir,
                env=node_env,
                text=True,
                umask=0o077,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def finish(procs: list[subprocess.Popen[str]]) -> list[NodeRun]:
    runs = []
    for rank, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=60)
        runs.append(NodeRun(rank, proc.returncode, out))
    return runs


def run_nodes(
    launch: Launch, ctx: LaunchContext, path: str, nodes: int = 2, env: Mapping[str, str] | None = None
) -> list[NodeRun]:
    return finish(start_nodes(launch, ctx, path, nodes, env))


def calls(ctx: LaunchContext) -> list[dict[str, Any]]:
    """The stand-in's recorded calls made from the job folder."""
    log = Path(ctx.job_dir) / ".standin-calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def subcommand(call: Mapping[str, Any]) -> str:
    argv: list[str] = [a for a in call["argv"] if a not in ("-s", "-v", "-d", "-q")]
    return argv[0]


def shellcheck() -> list[str]:
    found = shutil.which("shellcheck") or ("/usr/bin/shellcheck" if Path("/usr/bin/shellcheck").exists() else None)
    return [found] if found else []
