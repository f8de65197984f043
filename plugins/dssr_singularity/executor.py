"""SingularityExecutor: the plugin registered as ``singularity`` and ``apptainer``."""

from __future__ import annotations

import re
from typing import ClassVar, Mapping, Sequence

from dssr_core import Check, Executor, JobSpec, Launch, LaunchContext, NodeProbe, Settings, command, failed, passed

from .native import native_launch
from .settings import SingularitySettings
from .template import template_launch


class SingularityExecutor(Executor):
    name: ClassVar[str] = "singularity"
    confines_jobs = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.config = SingularitySettings.from_settings(settings)

    def launch(self, spec: JobSpec, ctx: LaunchContext) -> Launch:
        if spec.template is not None:
            return template_launch(self.config, spec, ctx)
        return native_launch(self.config, spec, ctx)

    def node_probes(self) -> Sequence[NodeProbe]:
        """The container runtime on each node: found (as configured, else apptainer, else singularity) and its version."""
        configured = command(self.config.binary) if self.config.binary else "''"
        script = (
            f"b={configured}\n"
            'if [ -z "$b" ]; then for c in apptainer singularity; do command -v "$c" >/dev/null && b=$c && break; done; fi\n'
            '[ -n "$b" ] || { echo "neither apptainer nor singularity is on the PATH"; exit 127; }\n'
            'command -v "$b" >/dev/null || { echo "$b is not on the PATH"; exit 127; }\n'
            '"$b" --version\n'
        )
        return (NodeProbe("the container runtime", script, self._judge_runtime),)

    def _judge_runtime(self, node: str, rc: int, output: str) -> Check:
        what = f"the container runtime on {node}"
        text = output.strip().splitlines()[-1].strip() if output.strip() else f"exit status {rc}"
        if rc != 0:
            setting = f"JARVICE_SINGULARITY_BINARY={self.config.binary}" if self.config.binary else "the node's PATH"
            return failed(
                what,
                f"{text} ({setting}). Fix: install Apptainer (or SingularityCE) on every compute "
                "node, or set JARVICE_SINGULARITY_BINARY to its path there",
            )
        version = re.search(r"(apptainer|singularity)(?:-ce)? version (\d+)\.(\d+)", text)
        if version is None:
            return failed(what, f"{text!r} is not an Apptainer or Singularity version line")
        major = int(version[2])
        if version[1] == "singularity" and major < 3:
            return failed(what, f"{text}: Singularity before 3.0 lacks the flags jobs use. Fix: install Apptainer")
        return passed(what, text)

    def describe(self) -> Mapping[str, str]:
        c = self.config
        return {
            "binary": c.binary or "apptainer if on the node's PATH, else singularity",
            "overlay": f"{c.overlay_mb} MB" if c.overlay_mb else "none (writable tmpfs)",
            "verbose": str(c.verbose).lower(),
            "tmpdir": c.tmpdir,
            "system registry": f"{c.system_registry or '-'}/{c.system_repo_base or '-'}:{c.images_tag}",
            "local registry": f"{c.local_registry}/{c.local_repo_base}" if c.local_registry else "-",
            "init image credentials": "set" if c.system_username or c.system_password else "none",
        }
