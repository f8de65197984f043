"""What the executor's cluster tests share: a Slurm connector on the test cluster, job runs, and the stand-in's logs."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from dssr_core import ClusterError, Downstream, ExitStatus, Identity, JobRef, JobSpec, Settings
from dssr_singularity import SingularityExecutor

from .helpers import SYSTEM


def connector_settings(cluster: Any, workdir: Path) -> dict[str, str]:
    mapping = workdir / "users_id_mapping.yaml"
    entries = [
        {
            "user": name,
            "jarvice_user": name,
            "mail": user.email,
            "mapped_user": name,
            "ssh_private_key_b64": base64.b64encode(Path(user.key_path).read_bytes()).decode(),
        }
        for name, user in cluster.users.items()
    ]
    mapping.write_text(yaml.safe_dump({"users_id_mapping": entries}))
    return {
        "JARVICE_SLURM_CLUSTER_ADDR": cluster.host,
        "JARVICE_SLURM_CLUSTER_PORT": str(cluster.ssh_port),
        "JARVICE_SLURM_SSH_USER": cluster.service_user,
        "JARVICE_SLURM_SSH_PKEY": base64.b64encode(Path(cluster.jarvice_key).read_bytes()).decode(),
        "JARVICE_SLURM_SSH_KNOWN_HOSTS": str(cluster.known_hosts),
        "JARVICE_BAREMETAL_SCRATCH_DIR": str(cluster.scratch),
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping),
        "JARVICE_SLURM_STATUS_TTL": "0.5",
    }


def slurm_fixtures(cluster_fixture: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The module fixtures ``cluster`` and ``connector`` of a cluster test module:
    ``cluster, connector = slurm_fixtures("slurm2605_cluster")``.

    ``cluster`` is the session fixture ``cluster_fixture`` (``slurm_cluster``: 22.05,
    ``slurm2605_cluster``: 26.05 with the real Apptainer), ``connector`` a Slurm connector (SSH)
    on it that maps the cluster's users, closed at the end of the module."""

    @pytest.fixture(scope="module")
    def cluster(request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue(cluster_fixture)

    @pytest.fixture(scope="module")
    def connector(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
        from dssr_slurm.connector import SlurmConnector

        conn = SlurmConnector(Settings(connector_settings(cluster, tmp_path_factory.mktemp("slurm"))))
        yield conn
        conn.close()

    return cluster, connector


def downstream(connector: Any, **executor_env: str) -> Downstream:
    return Downstream(connector, SingularityExecutor(Settings({**SYSTEM, **executor_env})))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def identity(cluster: Any, user: str) -> Identity:
    return Identity(email=cluster.users[user].email, username=user)


def wait_end(ds: Downstream, ref: JobRef, timeout: float = 150) -> ExitStatus:
    """Poll until the job has left the queue and its end state is final (no collection: files stay)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ds.runstatus(ref) is None:
            try:
                status = ds.connector.exit_status(ref)
            except ClusterError as exc:
                if not exc.transient:
                    raise
            else:
                if status.state.finished:
                    return status
        time.sleep(0.5)
    raise AssertionError(f"job {ref.name} did not end within {timeout} s")


def submit(ds: Downstream, spec: JobSpec) -> tuple[JobRef, str]:
    submission = ds.submit(spec)
    return JobRef(spec.name, spec.number, submission.jobid), submission.script


def job_dir(cluster: Any, user: str, name: str) -> Path:
    return Path(cluster.scratch) / "users" / user / f"jarvice_{name}"


def standin_calls(cluster: Any, user: str, name: str) -> list[dict[str, Any]]:
    log = job_dir(cluster, user, name) / ".standin-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def of(calls: list[dict[str, Any]], sub: str) -> list[list[str]]:
    return [c["argv"] for c in calls if [a for a in c["argv"] if not a.startswith("-")][:1] == [sub]]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
