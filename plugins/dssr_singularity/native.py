"""Native submissions: the whole node script (pull under a lock, overlay, exec) for an image + command."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from dssr_core import (
    SERVICE_DIR,
    BadRequest,
    ConfigError,
    JobSpec,
    Launch,
    LaunchContext,
    ServiceAccess,
    command,
    substitute,
)

from .images import NO_CREDENTIALS, Credentials, from_auths, registry_of, sif_name, validate_image
from .settings import SingularitySettings

#: Apptainer (1.2 and later) refuses to create an overlay image under 64 MiB: smaller sizes are raised to it
MIN_OVERLAY_MB = 64
#: paths that reach Apptainer's ``-B src`` syntax may not hold ``:`` or ``,``
_BIND_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*\Z")


def shell_file(name: str) -> str:
    """A shell file of this package (``native_node.sh``, ``etc_jarvice.sh``)."""
    return resources.files("dssr_singularity").joinpath(name).read_text(encoding="utf-8")


def native_credentials(settings: SingularitySettings, reference: str) -> Credentials:
    """The system registry's credentials for its images, else ``JARVICE_SINGULARITY_REGISTRY_AUTHS``, else none."""
    registry = registry_of(reference)
    if settings.system_registry and registry == settings.system_registry.lower():
        if settings.system_username or settings.system_password:
            return Credentials(settings.system_username, settings.system_password)
    return from_auths(settings.registry_auths, registry) if settings.registry_auths else NO_CREDENTIALS


def _user(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name):
        raise ConfigError(f"The cluster user name {name!r} is not a plain user name.")
    return name


def bind_path(name: str, path: str) -> str:
    """``path`` as Apptainer's ``-B`` takes it (no ``:`` or ``,``), else a :class:`ConfigError`."""
    if not _BIND_PATH.match(path):
        raise ConfigError(f"The job's {name} {path!r} cannot be bound into a container (use letters, digits, ./_+@-).")
    return path.rstrip("/") or "/"


def native_launch(settings: SingularitySettings, spec: JobSpec, ctx: LaunchContext) -> Launch:
    if spec.image is None:
        raise BadRequest("A native job for the singularity executor needs an image.")
    reference = validate_image(spec.image)
    for key in spec.environment:
        if not key.isidentifier() or not key.isascii():
            raise BadRequest(f"Environment variable name {key!r} is not a valid name.")
    job_dir = bind_path("folder", ctx.job_dir)
    user_scratch = bind_path("user scratch", ctx.user_scratch)
    scratch = ctx.scratch_root.rstrip("/")
    creds = native_credentials(settings, reference)
    image_dir = f"{user_scratch}/images" if creds else f"{scratch}/images"
    image_file = f"{image_dir}/{sif_name(reference)}"
    lock = f"{scratch}/cache/{hashlib.sha256(image_file.encode()).hexdigest()}.lock"
    overlay = settings.overlay_mb if spec.overlay_mb is None else spec.overlay_mb
    if overlay:
        overlay = max(overlay, MIN_OVERLAY_MB)
    service = spec.service
    environment = dict(spec.environment)
    job_command = spec.command
    if service is not None:
        environment.update(service.environment())
        job_command = known_values(service, job_command, ctx.cluster_user)
    header = {
        "DSSR_BINARY": settings.binary,
        "DSSR_VERBOSITY": "-v" if settings.verbose else "-s",
        "DSSR_IMAGE_SOURCE": "docker://" + reference,
        "DSSR_PULL_INSECURE": 1 if settings.insecure(registry_of(reference)) else 0,
        "DSSR_IMAGE_DIR": image_dir,
        "DSSR_IMAGE_FILE": image_file,
        "DSSR_IMAGE_UMASK": "077" if creds else "022",
        "DSSR_IMAGE_MODE": "0600" if creds else "0644",
        "DSSR_LOCK_DIR": f"{scratch}/cache",
        "DSSR_LOCK": lock,
        "DSSR_CACHEDIR": f"{settings.tmpdir.rstrip('/')}/dssr-apptainer-cache-{_user(ctx.cluster_user)}",
        "DSSR_NEEDS_CREDENTIALS": 1 if creds else 0,
        "DSSR_SECRETS_FILE": ctx.secrets_file,
        "DSSR_OVERLAY_MB": overlay,
        "DSSR_GPUS": spec.gpus,
        "DSSR_JOB_DIR": job_dir,
        "DSSR_USER_SCRATCH": user_scratch,
        "DSSR_WORKDIR": job_dir,
        "DSSR_COMMAND": job_command,
        "DSSR_SERVICE": 1 if service is not None else 0,
        "DSSR_SERVICE_DIR": f"{job_dir}/{SERVICE_DIR}",
        "DSSR_SERVICE_URL": (spec.url or "") if service is not None else "",
    }
    lines = [
        "#!/bin/bash",
        "# shellcheck disable=SC2016",
        f"# jarvice-dssr node script (executor singularity) for job {spec.name}: image {reference}",
        "set -u",
        *(f"{key}={command(value)}" for key, value in header.items()),
        "DSSR_ENVIRONMENT=(" + command([f"{k}={v}" for k, v in environment.items()]) + ")",
        "",
        *([shell_file("etc_jarvice.sh")] if service is not None else []),
        shell_file("native_node.sh"),
    ]
    secrets = {"DSSR_PULL_USERNAME": creds.username, "DSSR_PULL_PASSWORD": creds.password} if creds else {}
    if service is not None:
        secrets.update(service.secrets())
    return Launch(node_script="\n".join(lines), secrets=secrets, success_marker=None)


def known_values(service: ServiceAccess, text: str, user: str) -> str:
    """``text`` with the job's placeholders that are not secret filled in (the secret ones are
    filled on the node, from the secrets file, so that no script holds them)."""
    values = service.values(user)
    for secret in ("NIMBIXPASSWD", *(name for name in values if name.startswith("RANDOM"))):
        values.pop(secret)
    return substitute(text, values)
