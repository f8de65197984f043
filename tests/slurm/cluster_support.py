"""Building the Slurm connector (and an HTTP server on it) against the real test cluster."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Generator

import yaml

from dssr_core import Downstream, Settings
from tests.cluster import Cluster


def mapping_file(cluster: Cluster, path: Path, users: tuple[str, ...] = ("kirby", "mario", "dovahkiin")) -> Path:
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


def slurm_env(cluster: Cluster, tmp: Path, **extra: str) -> dict[str, str]:
    """The variables a site sets (examples/launch-slurm.sh), for the test cluster."""
    env = {
        "JARVICE_BAREMETAL_CONNECTOR": "slurm",
        "JARVICE_BAREMETAL_EXECUTOR": "shell",
        "JARVICE_SLURM_CLUSTER_ADDR": cluster.host,
        "JARVICE_SLURM_CLUSTER_PORT": str(cluster.ssh_port),
        "JARVICE_SLURM_SSH_USER": cluster.service_user,
        "JARVICE_SLURM_SSH_PKEY": base64.b64encode(cluster.jarvice_key.read_bytes()).decode(),
        "JARVICE_SLURM_SSH_KNOWN_HOSTS": str(cluster.known_hosts),
        "JARVICE_BAREMETAL_SCRATCH_DIR": str(cluster.scratch),
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping_file(cluster, tmp / "users_id_mapping_configuration.yaml")),
        "JARVICE_JWT_PUBLIC_KEY": cluster.idp.public_key_pem,
        "JARVICE_JWT_ISSUER": cluster.idp.issuer,
        "JARVICE_JWT_AUDIENCE": "jarvice",
        "JARVICE_SLURM_STATUS_TTL": "0.5",
        "JARVICE_SLURM_KILL_GRACE": "2",
        "JARVICE_SLURM_COMMAND_TIMEOUT": "15",
    }
    env.update(extra)
    return env


class Server:
    """The real HTTP server (dssr_server's app under waitress) on a free loopback port."""

    def __init__(self, downstream: Downstream, settings: Settings) -> None:
        from dssr_server import create_app
        from dssr_server.app import MAX_BODY
        from dssr_server.serve import create_server

        self.downstream = downstream
        # WAITRESS_THREADS as dssr-server reads it (16 here unless set): /v1's follower bound is half of it
        threads = settings.integer("WAITRESS_THREADS", 16, minimum=1, maximum=256)
        self.server = create_server(
            create_app(downstream, settings), host="127.0.0.1", port=0, threads=threads, max_body=MAX_BODY
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)
        self.downstream.close()


def serve(env: dict[str, str]) -> Generator[Server, None, None]:
    settings = Settings(env)
    server = Server(Downstream.from_settings(settings), settings)
    try:
        yield server
    finally:
        server.close()
