"""examples/kubernetes/: valid against the Kubernetes schemas (offline, kubernetes-validate), and
its parts fit together as a site applies them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dssr_core import Settings
from dssr_core.batch import UserMappingFile as MappingFile
from dssr_server import ServerSettings
from dssr_slurm.settings import SlurmSettings
from tests.core.test_usermap import openssh_key

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "examples" / "kubernetes").glob("*.yaml"))
#: the oldest Kubernetes release still maintained when this was written, and the newest the package knows
VERSIONS = ["1.31", kubernetes_validate.latest_version()]


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def container() -> dict[str, Any]:
    first: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return first


def test_the_example_has_a_deployment_a_service_a_configmap_and_secrets() -> None:
    kinds = sorted(d["kind"] for _, d in documents())
    assert kinds == ["ConfigMap", "Deployment", "Secret", "Secret", "Service"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name, doc", documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_each_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)  # strict: an unknown (misspelt) field fails too


def test_the_validation_catches_a_misspelt_field_and_a_wrong_type() -> None:
    bad = yaml.safe_load(yaml.safe_dump(one("Deployment")))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)
    bad = yaml.safe_load(yaml.safe_dump(one("Service")))
    bad["spec"]["ports"][0]["port"] = "5000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_probes_ask_live_and_ready_on_the_port_the_service_sends_to() -> None:
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    service = one("Service")
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert ports["http"] == int(env().get("WAITRESS_PORT", "5000"))  # the image listens on 5000 by default
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert one("Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_pod_runs_as_the_images_unprivileged_user() -> None:
    arg = re.search(r"^ARG DSSR_UID=(\d+)$", (REPO / "Containerfile").read_text(), re.M)
    assert arg is not None, "the Containerfile sets no DSSR_UID"
    uid = int(arg.group(1))
    security = one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == uid and security["fsGroup"] == uid
    assert container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    keys = [v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert [v["secret"]["defaultMode"] for v in keys] == [0o440]  # readable through fsGroup, by nobody else


def env() -> dict[str, str]:
    """The container's variables, secretKeyRef values read from the example Secret."""
    out = {}
    for item in container()["env"]:
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            out[item["name"]] = one("Secret", ref["name"])["stringData"][ref["key"]]
    return out


def mount(tmp_path: Path, keys: dict[str, str]) -> dict[str, str]:
    """Write the ConfigMap and the keys Secret where the Deployment mounts them, under tmp_path;
    the variables with those paths moved there too."""
    c = container()
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    moved: dict[str, str] = {}
    for m in c["volumeMounts"]:
        volume = volumes[m["name"]]
        if "configMap" in volume:
            files = dict(one("ConfigMap", volume["configMap"]["name"])["data"])
        elif "secret" in volume:
            assert one("Secret", volume["secret"]["secretName"])["stringData"].keys() == keys.keys()
            files = keys
        else:
            continue
        target = tmp_path / m["mountPath"].strip("/")
        target.mkdir(parents=True)
        for name, text in files.items():
            (target / name).write_text(text)
        moved[m["mountPath"]] = str(target)

    def relocate(text: str) -> str:
        for old, new in moved.items():
            text = text.replace(old + "/", new + "/")
        return text

    for written in tmp_path.rglob("*.yaml"):
        written.write_text(relocate(written.read_text()))
    return {name: relocate(value) for name, value in env().items()}


def test_the_configmap_and_secret_as_mounted_give_settings_that_load_and_a_mapping_without_problems(
    tmp_path: Path,
) -> None:
    keys = {"ssh-privatekey": openssh_key("ed25519"), "kirby": openssh_key("ed25519"), "mario": openssh_key("rsa")}
    variables = mount(tmp_path, keys)
    settings = Settings(variables)
    assert ServerSettings.from_settings(settings).connector == "slurm"
    slurm = SlurmSettings.from_settings(settings)
    assert (
        slurm.service_key_setting == "JARVICE_SLURM_SSH_PKEY_FILE" and slurm.service_key_text == keys["ssh-privatekey"]
    )
    assert Path(slurm.known_hosts or "").is_file()
    mapping = MappingFile(slurm.mapping_file)
    assert mapping.problems() == []
    assert mapping.login_for("kirby@example.com").user == "kirby"
    assert mapping.login_for("mario@example.com").user == "mario"
