"""Trust on first use against the test cluster's real sshd: the first key is recorded and pinned across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dssr_core import ClusterError, Settings
from dssr_slurm.connector import SlurmConnector
from tests.cluster import Cluster
from tests.slurm.cluster_support import slurm_env

pytestmark = pytest.mark.cluster


def connector(cluster: Cluster, tmp_path: Path, record: Path) -> SlurmConnector:
    env = slurm_env(cluster, tmp_path, JARVICE_SLURM_SSH_HOST_KEY_RECORD=str(record))
    del env["JARVICE_SLURM_SSH_KNOWN_HOSTS"]  # neither a known_hosts file nor a fingerprint: trust on first use
    return SlurmConnector(Settings(env))


def test_first_seen_host_key_is_recorded_and_a_restart_refuses_another(slurm_cluster: Cluster, tmp_path: Path) -> None:
    record = tmp_path / "host-keys"
    first = connector(slurm_cluster, tmp_path, record)
    first.ping()
    first.close()
    line = f"[{slurm_cluster.host}]:{slurm_cluster.ssh_port} {slurm_cluster.ssh_host_fingerprint}"
    assert record.read_text() == line + "\n"

    again = connector(slurm_cluster, tmp_path, record)  # a restart: the recorded key is the one sshd shows
    again.ping()
    again.close()
    assert record.read_text() == line + "\n"

    # the record holds another key for this host: what an impostor on the login node's address would cause
    record.write_text(f"[{slurm_cluster.host}]:{slurm_cluster.ssh_port} SHA256:{'A' * 43}\n")
    impostor = connector(slurm_cluster, tmp_path, record)
    try:
        with pytest.raises(ClusterError, match=rf"changed .* refusing to connect\. .*remove its line from {record}"):
            impostor.ping()
    finally:
        impostor.close()
