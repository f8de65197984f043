"""The legacy ``/submit`` request: ``hpc_script`` decoding and ``JOBOBJ_*`` keys -> :class:`JobSpec`.

Every refusal is a :class:`~dssr_core.errors.BadRequest` with one sentence a
portal administrator understands; nothing here touches the cluster.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import BadRequest
from .job import JobSpec, UpstreamTemplate, validate_name, validate_number

PARAMETERS_FIELD = "DOWNSTREAM_PARAMETERS"

#: what may follow ``sbatch_`` in a pseudo-device (a long option name)
_FLAG = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
#: values that reach a scheduler's command line (quoted anyway; also refused when odd)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:=@%+/\-\[\]]{1,256}$")
_PARTITION = re.compile(r"^[A-Za-z0-9_.,-]{1,128}$")
_LICENSES = re.compile(r"^[A-Za-z0-9_.:,@|-]{1,256}$")
_WALLTIME = re.compile(r"^(?:\d+-)?\d+(?::\d{1,2}){0,2}$|^\d+-\d+$|^(?:UNLIMITED|INFINITE)$")


def decode_template(hpc_script: object, key: str) -> str:
    """Decode ``hpc_script[key]`` (base64 UTF-8 text)."""
    if not isinstance(hpc_script, Mapping):
        raise BadRequest("hpc_script must be an object mapping an executor name to a base64 script.")
    if key not in hpc_script:
        sent = ", ".join(sorted(str(k) for k in hpc_script)) or "none"
        raise BadRequest(f"hpc_script has no entry {key!r} for this downstream's executor (the upstream sent: {sent}).")
    value = hpc_script[key]
    if not isinstance(value, str):
        raise BadRequest(f"hpc_script[{key!r}] must be a base64 string.")
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest(f"hpc_script[{key!r}] is not valid base64-encoded UTF-8 text.") from None


def template_keys(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of the template (first occurrence wins; only JOBOBJ_*/JARVICE_*)."""
    keys: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        match = re.match(r"^(JOBOBJ_[A-Z0-9_]+|JARVICE_[A-Z0-9_]+)=(.*)$", line)
        if match and match[1] not in keys:
            keys[match[1]] = match[2].strip()
    return keys


@dataclass
class Devices:
    """What the pseudo-devices (``JOBOBJ_DEVICES``) ask for."""

    partition: str | None = None
    exclusive: bool = True
    overlay_mb: int | None = None
    flags: dict[str, str] = field(default_factory=dict)
    #: ``sbatch_hold=true``: submit held (``--hold`` takes no value, so it is not a flag)
    held: bool = False


def parse_devices(raw: str | None) -> tuple[Devices, tuple[str, ...]]:
    devices = Devices()
    if not raw:
        return devices, ()
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        raise BadRequest(f"JOBOBJ_DEVICES is not a JSON list: {raw[:80]!r}.") from None
    if not isinstance(items, list):
        raise BadRequest("JOBOBJ_DEVICES must be a JSON list of 'key=value' strings.")
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise BadRequest(f"Malformed pseudo-device {item!r}: expected 'key=value'.")
        key, value = (part.strip() for part in item.split("=", 1))
        if key == "partition":
            if not _PARTITION.match(value):
                raise BadRequest(f"Invalid partition {value!r} in pseudo-device {item!r}.")
            devices.partition = value
        elif key == "exclusive":
            if value.lower() not in ("true", "false"):
                raise BadRequest(f"Invalid exclusive setting {value!r}: use True or False.")
            devices.exclusive = value.lower() == "true"
        elif key == "overlay":
            if not re.fullmatch(r"\d{1,7}", value):
                raise BadRequest(f"Invalid overlay setting {value!r}: must be an integer >= 0 (MB).")
            devices.overlay_mb = int(value)
        elif key == "sbatch_hold":
            if value.lower() not in ("true", "false"):
                raise BadRequest(f"Invalid hold setting {value!r}: use True or False.")
            devices.held = value.lower() == "true"
        elif key.startswith("sbatch_"):
            flag = key[len("sbatch_"):]
            if not _FLAG.match(flag):
                raise BadRequest(f"Invalid scheduler flag {flag!r} in pseudo-device {item!r}.")
            if not _SAFE_VALUE.match(value):
                raise BadRequest(f"Invalid value {value!r} for scheduler flag --{flag}.")
            devices.flags[flag] = value
        else:
            raise BadRequest(
                f"Unknown pseudo-device {key!r}: allowed are partition, exclusive, overlay and sbatch_<flag>."
            )
    return devices, tuple(items)


def _int_key(keys: Mapping[str, str], name: str, default: int | None, minimum: int = 0) -> int:
    raw = keys.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequest(f"The job script has no {name}.")
        return default
    if not re.fullmatch(r"\d{1,9}", raw):
        raise BadRequest(f"{name}={raw!r} is not an integer >= {minimum}.")
    value = int(raw)
    if value < minimum:
        raise BadRequest(f"{name}={raw!r} is not an integer >= {minimum}.")
    return value


def _bool_key(keys: Mapping[str, str], name: str) -> bool:
    raw = keys.get(name, "")
    if raw in ("", "False", "false"):
        return False
    if raw in ("True", "true"):
        return True
    raise BadRequest(f"{name}={raw!r} is not True or False.")


def _registry_auths(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        config = json.loads(base64.b64decode(raw, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("JOBOBJ_CTRSECRET is not base64 of a Docker config.json.") from None
    auths = config.get("auths", {}) if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        raise BadRequest("JOBOBJ_CTRSECRET has no valid 'auths' object.")
    return auths


def _docker_secret(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        secret = json.loads(raw)
    except json.JSONDecodeError:
        raise BadRequest("JOBOBJ_DOCKER_SECRET is not a JSON object.") from None
    if not isinstance(secret, dict) or not all(isinstance(secret.get(k), str) for k in ("server", "username", "password")):
        raise BadRequest("JOBOBJ_DOCKER_SECRET must hold 'server', 'username' and 'password' strings.")
    return {k: secret[k] for k in ("server", "username", "password")}


def check_template_format(text: str) -> None:
    """The template must have one ``{DOWNSTREAM_PARAMETERS}`` field and be a valid ``str.format`` string."""
    if "{" + PARAMETERS_FIELD + "}" not in text:
        raise BadRequest("The job script has no {DOWNSTREAM_PARAMETERS} line.")
    try:
        text.format(**{PARAMETERS_FIELD: ""})
    except (KeyError, IndexError, ValueError) as exc:
        raise BadRequest(
            f"The job script is not a valid template ({exc.__class__.__name__}: {exc}); "
            "braces other than {DOWNSTREAM_PARAMETERS} must be doubled."
        ) from None


def fill_template(text: str, parameters: str) -> str:
    """Replace the ``{DOWNSTREAM_PARAMETERS}`` field (and undouble braces), as ``str.format`` does."""
    return text.format(**{PARAMETERS_FIELD: parameters})


def parse_template(text: str, nodes: int, name: str, number: int) -> JobSpec:
    """Read the ``JOBOBJ_*``/``JARVICE_*`` keys of a decoded template into a :class:`JobSpec`."""
    check_template_format(text)
    # the upstream doubles every brace of the template, JSON values included: read them undoubled
    keys = template_keys(fill_template(text, ""))
    appdef = _int_key(keys, "JOBOBJ_APPDEFVERSION", None)
    if appdef < 2:
        raise BadRequest(f"Application definition version {appdef} is too old: this downstream needs appdef version 2 or newer.")
    devices, device_items = parse_devices(keys.get("JOBOBJ_DEVICES"))
    arch = keys.get("JOBOBJ_ARCH") or "amd64"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    if not re.fullmatch(r"[a-z0-9_]{1,16}", arch):
        raise BadRequest(f"JOBOBJ_ARCH={arch!r} is not an architecture name.")
    licenses = keys.get("JOBOBJ_LICENSES") or None
    if licenses is not None and not _LICENSES.match(licenses):
        raise BadRequest(f"JOBOBJ_LICENSES={licenses!r} is not a valid licenses string.")
    walltime = keys.get("JOBOBJ_WALLTIME") or None
    if walltime is not None and not _WALLTIME.match(walltime):
        raise BadRequest(f"JOBOBJ_WALLTIME={walltime!r} is not a time limit (e.g. 01:00:00 or 1-00:00:00).")
    app = keys.get("JOBOBJ_NAE", "")
    if app and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", app):
        raise BadRequest(f"JOBOBJ_NAE={app!r} is not a valid application name.")
    template = UpstreamTemplate(
        text=text,
        appdef_version=appdef,
        arch=arch,
        app=app,
        repo=keys.get("JOBOBJ_REPO", ""),
        registry_auths=_registry_auths(keys.get("JOBOBJ_CTRSECRET")),
        docker_secret=_docker_secret(keys.get("JOBOBJ_DOCKER_SECRET")),
        upstream_user=keys.get("JOBOBJ_USER", ""),
        devices=device_items,
    )
    return JobSpec(
        name=name,
        number=number,
        nodes=nodes,
        cores=_int_key(keys, "JARVICE_CPU_CORES", None, minimum=1),
        gpus=_int_key(keys, "JOBOBJ_GPUS", 0),
        memory_gb=_int_key(keys, "JOBOBJ_RAM", 0),
        walltime=walltime,
        partition=devices.partition,
        licenses=licenses,
        exclusive=devices.exclusive,
        scheduler_flags=devices.flags,
        overlay_mb=devices.overlay_mb,
        command=keys.get("JARVICE_CMD", ""),
        interactive=_bool_key(keys, "JOBOBJ_INTERACTIVE"),
        held=devices.held,
        arch=arch,
        template=template,
    )


def parse_submission(args: Mapping[str, Any], script_key: str) -> JobSpec:
    """A legacy ``/submit`` ``args`` object -> :class:`JobSpec` (identity not yet attached)."""
    for key in ("name", "number", "nodes", "hpc_script"):
        if key not in args:
            raise BadRequest(f"The submission has no {key!r}.")
    name = validate_name(args["name"])
    number = validate_number(args["number"])
    nodes = args["nodes"]
    if isinstance(nodes, str) and nodes.strip().isdigit():
        nodes = int(nodes)
    if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes < 1:
        raise BadRequest(f"nodes must be an integer >= 1, not {args['nodes']!r}.")
    text = decode_template(args["hpc_script"], script_key)
    return parse_template(text, nodes, name, number)
