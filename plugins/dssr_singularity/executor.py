"""SingularityExecutor: the plugin registered as ``singularity`` and ``apptainer``."""

from __future__ import annotations

from typing import ClassVar, Mapping

from dssr_core import Executor, JobSpec, Launch, LaunchContext, Settings

from .native import native_launch
from .settings import SingularitySettings
from .template import template_launch


class SingularityExecutor(Executor):
    name: ClassVar[str] = "singularity"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.config = SingularitySettings.from_settings(settings)

    def launch(self, spec: JobSpec, ctx: LaunchContext) -> Launch:
        if spec.template is not None:
            return template_launch(self.config, spec, ctx)
        return native_launch(self.config, spec, ctx)

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
