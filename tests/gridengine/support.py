"""Building the Grid Engine connector (and an HTTP server on it) against the real test cluster."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tests.cluster.gridengine import GECluster


def mapping_file(cluster: GECluster, path: Path, users: tuple[str, ...] = ("kirby", "mario", "dovahkiin")) -> Path:
    entries = [
        {
            "user": name.title(),
            "jarvice_user": name,
            "mail": cluster.users[name].email,
            "mapped_user": name,
            "ssh_private_key_b64": base64.b64encode(cluster.users[name].key_path.read_bytes()).decode(),
        }
        for name in users
    ]
    path.write_text(yaml.safe_dump({"users_id_mapping": entries}))
    return path


def ge_env(cluster: GECluster, tmp: Path, **extra: str) -> dict[str, str]:
    """The variables a site sets (docs/gridengine.md), for the test cluster."""
    env = {
        "JARVICE_BAREMETAL_CONNECTOR": "gridengine",
        "JARVICE_BAREMETAL_EXECUTOR": "shell",
        "JARVICE_GE_CLUSTER_ADDR": cluster.host,
        "JARVICE_GE_CLUSTER_PORT": str(cluster.ssh_port),
        "JARVICE_GE_SSH_USER": cluster.service_user,
        "JARVICE_GE_SSH_PKEY": base64.b64encode(cluster.jarvice_key.read_bytes()).decode(),
        "JARVICE_GE_SSH_KNOWN_HOSTS": str(cluster.known_hosts),
        "JARVICE_GE_PE": cluster.pe,
        "JARVICE_BAREMETAL_SCRATCH_DIR": str(cluster.scratch),
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping_file(cluster, tmp / "users_id_mapping_configuration.yaml")),
        "JARVICE_JWT_PUBLIC_KEY": cluster.idp.public_key_pem,
        "JARVICE_JWT_ISSUER": cluster.idp.issuer,
        "JARVICE_JWT_AUDIENCE": "jarvice",
        "JARVICE_GE_STATUS_TTL": "0.5",
        "JARVICE_GE_COMMAND_TIMEOUT": "15",
    }
    env.update(extra)
    return env
