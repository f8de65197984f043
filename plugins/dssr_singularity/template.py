"""Upstream templates: the ``{DOWNSTREAM_PARAMETERS}`` export block of the first implementation."""

from __future__ import annotations

import base64

from dssr_core import (
    SERVICE_DIR,
    ConfigError,
    JobSpec,
    Launch,
    LaunchContext,
    UpstreamTemplate,
    command,
    exports,
    fill_template,
    redact_template,
)

from .images import app_credentials, registry_of, swap_arch, validate_image
from .native import bind_path, known_values, shell_file
from .settings import SingularitySettings

#: the template's rank 0 prints this line when the app's command succeeded
SUCCESS_MARKER = "JARVICE_CMD_SUCCESS"
#: ports of the first implementation (its Slurm connector hard-coded them)
SERVICE_PORT = 2228
SSH_PORT = 2227
#: the credential variables of the block: carried by the secrets file, never by the script
SECRET_VARIABLES = (
    "JARVICE_INIT_DOCKER_USERNAME",
    "JARVICE_INIT_DOCKER_PASSWORD",
    "JARVICE_DOCKER_USERNAME",
    "JARVICE_DOCKER_PASSWORD",
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def init_image(settings: SingularitySettings, template: UpstreamTemplate) -> str:
    if not settings.system_registry or not settings.system_repo_base:
        missing = "JARVICE_SYSTEM_REGISTRY" if not settings.system_registry else "JARVICE_SYSTEM_REPO_BASE"
        raise ConfigError(f"{missing} is not set: it is required to run upstream templates (the JARVICE init image).")
    tag = swap_arch(settings.images_tag, template.arch)
    return f"{settings.system_registry}/{settings.system_repo_base}/initv{template.appdef_version}:{tag}"


def app_image(settings: SingularitySettings, template: UpstreamTemplate) -> str:
    if settings.local_registry:
        return validate_image(f"{settings.local_registry}/{settings.local_repo_base}/{template.app}:latest")
    return validate_image(template.repo)


def template_launch(settings: SingularitySettings, spec: JobSpec, ctx: LaunchContext) -> Launch:
    template = spec.template
    assert template is not None
    init = init_image(settings, template)
    app = app_image(settings, template)
    app_creds = app_credentials(app, template.docker_secret, template.registry_auths)
    overlay = settings.overlay_mb if spec.overlay_mb is None else spec.overlay_mb
    secrets = {
        "JARVICE_INIT_DOCKER_USERNAME": _b64(settings.system_username),
        "JARVICE_INIT_DOCKER_PASSWORD": _b64(settings.system_password),
        "JARVICE_DOCKER_USERNAME": _b64(app_creds.username),
        "JARVICE_DOCKER_PASSWORD": _b64(app_creds.password),
    }
    before = {
        "JARVICE_JOB_SCRATCH_DIR": ctx.user_scratch.rstrip("/") + "/",
        "JARVICE_JOB_GLOBAL_SCRATCH_DIR": ctx.scratch_root.rstrip("/") + "/",
        "JARVICE_JOB_APP_IS_IN_GLOBAL_REGISTRIES": "False" if app_creds else "True",
        "SINGULARITYENV_JARVICE_SERVICE_PORT": spec.service.port if spec.service else SERVICE_PORT,
        "SINGULARITYENV_JARVICE_SSH_PORT": SSH_PORT,
        "JARVICE_SINGULARITY_TMPDIR": settings.tmpdir,
        "JOB_LOCAL_USER": ctx.cluster_user,
        "JARVICE_SINGULARITY_OVERLAY_SIZE": overlay,
    }
    if settings.insecure(registry_of(init)) and settings.insecure(registry_of(app)):
        # the template's own pulls: plain HTTP only when every image it is given lives in a listed registry
        before.update({"APPTAINER_NOHTTPS": 1, "SINGULARITY_NOHTTPS": 1})
    after = {
        "JARVICE_APP_IMAGE": "docker://" + app,
        "JARVICE_INIT_IMAGE": "docker://" + init,
        "JARVICE_CMD": spec.command,
        "SV": "true" if settings.verbose else "false",
        "SV_FLAG": "-v" if settings.verbose else "-s",
        "SCHTTP_PROXY": settings.http_proxy,
        "SCHTTPS_PROXY": settings.https_proxy,
        "SCNO_PROXY": settings.no_proxy,
    }
    if spec.service is not None:
        if spec.service.ingress_path is not None:
            before["SINGULARITYENV_JARVICE_INGRESSPATH"] = spec.service.ingress_path
        secrets.update(spec.service.secrets())
        after["JARVICE_CMD"] = known_values(spec.service, spec.command, ctx.cluster_user)
    secrets_file = command(ctx.secrets_file)
    block = "\n".join(
        [
            "# --- downstream parameters (jarvice-dssr, executor singularity) ---",
            "# shellcheck disable=SC1090,SC1091,SC2016",
            "{",
            exports(before),
            "# registry credentials (base64): read from the job's private secrets file, never written here",
            exports({name: "" for name in SECRET_VARIABLES}),
            f"if [ -r {secrets_file} ]; then . {secrets_file}; fi",
            exports(after),
            *(_service_lines(ctx) if spec.service is not None else []),
            "}",
            "# --- end of downstream parameters ---",
        ]
    )
    return Launch(
        node_script=fill_template(redact_template(template.text), block), secrets=secrets, success_marker=SUCCESS_MARKER
    )


def _service_lines(ctx: LaunchContext) -> list[str]:
    """An interactive job's lines: this node's ``/etc/JARVICE`` folder, bound read-only into every
    container the template starts (``APPTAINER_BIND``/``SINGULARITY_BIND``: Apptainer adds them to the
    template's own ``-B``), the job's secrets in ``JARVICE_CMD``, and on rank 0 the watcher that copies
    the image's ``/etc/NAE`` files out of the container the template starts, then writes the marker."""
    job_dir = bind_path("folder", ctx.job_dir)
    folder = command(f"{job_dir}/{SERVICE_DIR}")
    etc = command(f"{job_dir}/.dssr-etc-jarvice-") + '"${PROCESS_PROCID:-0}"'
    return [
        "# interactive job: the job's /etc/JARVICE (removed with the job folder at garbage collection)",
        shell_file("etc_jarvice.sh"),
        f"dssr_etc={etc}",
        'if ! dssr_etc_jarvice "$dssr_etc"; then',
        '    echo "[dssr] the job\'s /etc/JARVICE folder $dssr_etc could not be written" >&2',
        "    exit 125",
        "fi",
        'dssr_binds="${APPTAINER_BIND:-${SINGULARITY_BIND:-}}"',
        'export APPTAINER_BIND="${dssr_binds:+$dssr_binds,}$dssr_etc:/etc/JARVICE:ro"',
        'export SINGULARITY_BIND="$APPTAINER_BIND"',
        "dssr_fill_secrets JARVICE_CMD",
        'if [ "${PROCESS_PROCID:-0}" = 0 ]; then',
        shell_file("nae_watch.sh"),
        f"    (umask 027 && {{ [ -d {folder} ] || mkdir -m 0770 {folder}; }} &&",
        f'        dssr_nae_watch "$$" {folder} "${{PROCESS_NODENAME:-}}") </dev/null >/dev/null 2>&1 &',
        "fi",
    ]
