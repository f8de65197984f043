"""The ``shell`` executor: runs the job's command with bash on the host, no container."""

from __future__ import annotations

import re

from dssr_core import (
    BadRequest,
    Executor,
    JobSpec,
    Launch,
    LaunchContext,
    command,
    exports,
    fill_template,
    redact_template,
    shown,
)

_IDENTIFIER = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")

#: what an upstream template prints when the app's command succeeded (its exit code is not the verdict)
SUCCESS_MARKER = "JARVICE_CMD_SUCCESS"

_HEADER = "#!/bin/bash\n# node script of the dssr shell executor (runs on the host, no container)\n"


class ShellExecutor(Executor):
    name = "shell"

    def launch(self, spec: JobSpec, ctx: LaunchContext) -> Launch:
        if spec.template is not None:
            return Launch(self._template_script(spec, ctx), success_marker=SUCCESS_MARKER)
        return Launch(self._native_script(spec))

    def _native_script(self, spec: JobSpec) -> str:
        for key in spec.environment:
            if not _IDENTIFIER.match(key):
                raise BadRequest(f"Environment variable name {shown(key)} is not a valid shell variable name.")
        lines = [_HEADER.rstrip("\n")]
        if spec.environment:
            lines.append(exports(dict(spec.environment)))
        lines.append('cd "$JOB_SUBMIT_DIR" || exit 1')
        lines.append("exec " + command("bash", "-c", spec.command))
        return "\n".join(lines) + "\n"

    def _template_script(self, spec: JobSpec, ctx: LaunchContext) -> str:
        assert spec.template is not None
        parameters = exports(
            {
                "JARVICE_BAREMETAL_SCRATCH_DIR": ctx.scratch_root,
                "JARVICE_JOB_SCRATCH_DIR": ctx.job_dir,
                "JARVICE_USER_SCRATCH_DIR": ctx.user_scratch,
                "JOB_LOCAL_USER": ctx.cluster_user,
                "JARVICE_APP_IMAGE": spec.template.repo,
                "JARVICE_CMD": spec.command,
                "SV": "false",
                "SV_FLAG": "-s",
            }
        )
        # the template's credential lines: nothing on the host needs them
        script = fill_template(redact_template(spec.template.text), parameters)
        if not script.startswith("#!"):
            script = _HEADER + script
        return script if script.endswith("\n") else script + "\n"
