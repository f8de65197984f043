"""JARVICE's job template: its ``JOBOBJ_*``/``JARVICE_*`` keys -> :class:`JobSpec`, its parameter field, its secrets.

The template is the upstream's job model (the text of one ``hpc_script``
entry, already decoded: reading the ``/submit`` form is :mod:`dssr_server.wire`'s).
Every refusal is a :class:`~dssr_core.errors.BadRequest` with one sentence a
portal administrator understands; nothing here touches the cluster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ._errors import BadRequest
from ._job import JobSpec, UpstreamTemplate
from ._validate import decode_base64_text, script_lines, shown

PARAMETERS_FIELD = "DOWNSTREAM_PARAMETERS"
#: the template's keys that carry credentials: their values never leave the parser
SECRET_KEYS = frozenset({"JOBOBJ_CTRSECRET", "JOBOBJ_DOCKER_SECRET"})

# Every pattern below matches a whole string (\A...\Z) of ASCII characters.
#: what may follow ``sbatch_`` in a pseudo-device (a long option name)
_FLAG = re.compile(r"\A[a-z][a-z0-9-]{0,63}\Z")
#: values that reach a scheduler's command line (quoted anyway; also refused when odd)
_SAFE_VALUE = re.compile(r"\A[A-Za-z0-9_.,:=@%+/\-\[\]]{1,256}\Z")
_PARTITION = re.compile(r"\A[A-Za-z0-9_.,-]{1,128}\Z")
_LICENSES = re.compile(r"\A[A-Za-z0-9_.:,@|-]{1,256}\Z")
_WALLTIME = re.compile(
    r"\A(?:(?:[0-9]{1,5}-)?[0-9]{1,7}(?::[0-9]{1,2}){0,2}|[0-9]{1,5}-[0-9]{1,3}|UNLIMITED|INFINITE)\Z"
)
#: a ``KEY=VALUE`` line of the template (``export`` allowed), as the key reader and the redaction see it
_KEY_LINE = re.compile(r"\A([ \t\r]*(?:export[ \t]+)?(JOBOBJ_[A-Z0-9_]+|JARVICE_[A-Z0-9_]+))=(.*)\Z", re.S)
#: what the template's text may hold between literal text: a doubled brace, the one field, or a stray brace
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{" + PARAMETERS_FIELD + r"\}|[{}]")


def template_keys(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of the template (first occurrence wins; only JOBOBJ_*/JARVICE_*).

    Lines are split as bash splits them (:func:`~dssr_core.validate.script_lines`),
    the same way :func:`redact_template` does, so every secret read here is also removed there.
    """
    keys: dict[str, str] = {}
    for line in script_lines(text):
        match = _KEY_LINE.match(line)
        if match and match[2] not in keys:
            keys[match[2]] = match[3].strip(" \t\r")
    return keys


def redact_template(text: str) -> str:
    """The template with the values of its credential lines (:data:`SECRET_KEYS`) removed."""
    lines = script_lines(text)
    for i, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if match and match[2] in SECRET_KEYS:
            lines[i] = match[1] + "="
    return "\n".join(lines)


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
        raise BadRequest(f"JOBOBJ_DEVICES is not a JSON list: {shown(raw)}.") from None
    if not isinstance(items, list):
        raise BadRequest("JOBOBJ_DEVICES must be a JSON list of 'key=value' strings.")
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise BadRequest(f"Malformed pseudo-device {shown(item)}: expected 'key=value'.")
        key, value = (part.strip() for part in item.split("=", 1))
        if key == "partition":
            if not _PARTITION.match(value):
                raise BadRequest(f"Invalid partition {shown(value)} in a pseudo-device.")
            devices.partition = value
        elif key == "exclusive":
            if value.lower() not in ("true", "false"):
                raise BadRequest(f"Invalid exclusive setting {shown(value)}: use True or False.")
            devices.exclusive = value.lower() == "true"
        elif key == "overlay":
            if not re.fullmatch(r"[0-9]{1,7}", value):
                raise BadRequest(f"Invalid overlay setting {shown(value)}: must be an integer from 0 to 9999999 (MB).")
            devices.overlay_mb = int(value)
        elif key == "sbatch_hold":
            if value.lower() not in ("true", "false"):
                raise BadRequest(f"Invalid hold setting {shown(value)}: use True or False.")
            devices.held = value.lower() == "true"
        elif key.startswith("sbatch_"):
            flag = key[len("sbatch_") :]
            if not _FLAG.match(flag):
                raise BadRequest(f"Invalid scheduler flag {shown(flag)} in a pseudo-device.")
            if not _SAFE_VALUE.match(value):
                raise BadRequest(f"Invalid value {shown(value)} for scheduler flag --{flag}.")
            devices.flags[flag] = value
        else:
            raise BadRequest(
                f"Unknown pseudo-device {shown(key)}: allowed are partition, exclusive, overlay and sbatch_<flag>."
            )
    return devices, tuple(items)


def _int_key(keys: Mapping[str, str], name: str, default: int | None, minimum: int = 0) -> int:
    raw = keys.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequest(f"The job script has no {name}.")
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) < minimum:
        raise BadRequest(f"{name}={shown(raw)} is not an integer from {minimum} to 999999999.")
    value = int(raw)
    return value


def _bool_key(keys: Mapping[str, str], name: str) -> bool:
    raw = keys.get(name, "")
    if raw in ("", "False", "false"):
        return False
    if raw in ("True", "true"):
        return True
    raise BadRequest(f"{name}={shown(raw)} is not True or False.")


def _registry_auths(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        config = json.loads(decode_base64_text(raw))
    except (ValueError, RecursionError):
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
    except (ValueError, RecursionError):
        raise BadRequest("JOBOBJ_DOCKER_SECRET is not a JSON object.") from None
    if not isinstance(secret, dict) or not all(
        isinstance(secret.get(k), str) for k in ("server", "username", "password")
    ):
        raise BadRequest("JOBOBJ_DOCKER_SECRET must hold 'server', 'username' and 'password' strings.")
    return {k: secret[k] for k in ("server", "username", "password")}


def split_template(text: str) -> tuple[str, str]:
    """The template's text before and after its one ``{DOWNSTREAM_PARAMETERS}`` field, braces undoubled.

    The upstream writes the template for ``str.format``, but ``str.format``
    never runs on it here: it would obey format specs and other fields in
    untrusted text (``{DOWNSTREAM_PARAMETERS:>20000000}`` makes 20 MB of
    151 bytes).  Only ``{{``, ``}}`` and exactly one bare field are accepted;
    any other brace is a :class:`BadRequest`.
    """
    parts: list[str] = []
    current: list[str] = []
    start = 0
    for token in _TEMPLATE_TOKEN.finditer(text):
        current.append(text[start : token.start()])
        start = token.end()
        if token[0] == "{{":
            current.append("{")
        elif token[0] == "}}":
            current.append("}")
        elif len(token[0]) > 1:
            parts.append("".join(current))
            current = []
        else:
            line = text.count("\n", 0, token.start()) + 1
            raise BadRequest(
                f"The job script is not a valid template: a single {token[0]!r} on line {line}; "
                "braces other than {DOWNSTREAM_PARAMETERS} must be doubled."
            )
    parts.append("".join(current + [text[start:]]))
    if len(parts) == 1:
        raise BadRequest("The job script has no {DOWNSTREAM_PARAMETERS} line.")
    if len(parts) > 2:
        raise BadRequest(f"The job script has {len(parts) - 1} {{DOWNSTREAM_PARAMETERS}} fields: it must have one.")
    return parts[0], parts[1]


def check_template_format(text: str) -> None:
    """The template must have one ``{DOWNSTREAM_PARAMETERS}`` field, every other brace doubled."""
    split_template(text)


def fill_template(text: str, parameters: str) -> str:
    """Put ``parameters`` in place of the template's one ``{DOWNSTREAM_PARAMETERS}`` field (braces undoubled).

    ``parameters`` is inserted once, as is: the result is never longer than
    the template plus the parameters.
    """
    before, after = split_template(text)
    return before + parameters + after


def parse_template(text: str, nodes: int, name: str, number: int) -> JobSpec:
    """The job a decoded template describes, as ``name`` (``number``) on ``nodes`` nodes.

    Reads its ``JOBOBJ_*``/``JARVICE_*`` keys; the template is kept in
    :attr:`JobSpec.template` for the executor.  Raises :class:`BadRequest`
    saying what is wrong (nothing is submitted).
    """
    check_template_format(text)
    # the upstream doubles every brace of the template, JSON values included: read them undoubled
    keys = template_keys(fill_template(text, ""))
    appdef = _int_key(keys, "JOBOBJ_APPDEFVERSION", None)
    if appdef < 2:
        raise BadRequest(
            f"Application definition version {appdef} is too old: this downstream needs appdef version 2 or newer."
        )
    devices, device_items = parse_devices(keys.get("JOBOBJ_DEVICES"))
    arch = keys.get("JOBOBJ_ARCH") or "amd64"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    if not re.fullmatch(r"[a-z0-9_]{1,16}", arch):
        raise BadRequest(f"JOBOBJ_ARCH={shown(arch)} is not an architecture name.")
    licenses = keys.get("JOBOBJ_LICENSES") or None
    if licenses is not None and not _LICENSES.match(licenses):
        raise BadRequest(f"JOBOBJ_LICENSES={shown(licenses)} is not a valid licenses string.")
    walltime = keys.get("JOBOBJ_WALLTIME") or None
    if walltime is not None and not _WALLTIME.match(walltime):
        raise BadRequest(f"JOBOBJ_WALLTIME={shown(walltime)} is not a time limit (e.g. 01:00:00 or 1-00:00:00).")
    app = keys.get("JOBOBJ_NAE", "")
    if app and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", app):
        raise BadRequest(f"JOBOBJ_NAE={shown(app)} is not a valid application name.")
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
