"""What the Grid Engine connector relies on, checked on the real Grid Engine 8.1.9 daemons (docs/gridengine.md).

Each test is one fact of /work/shared/FACTS.md ("Grid Engine 8.1.9") as the daemons show it.
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import pytest

from dssr_core import Downstream, Identity, JobSpec, Settings
from dssr_core.testing.contract import unique_name
from dssr_gridengine.connector import GridEngineConnector
from dssr_local.shell import ShellExecutor
from tests.cluster import gridengine
from tests.cluster.gridengine import GECluster
from tests.gridengine.support import ge_env

pytestmark = pytest.mark.cluster


def qsub_held(cluster: GECluster, name: str, user: str = "kirby") -> str:
    return cluster.run(f"cd /tmp && qsub -terse -h -N {name} -o /dev/null -j y -b y true", user=user).stdout.strip()


def test_every_node_names_itself_and_resolves_forward_and_back(gridengine_cluster: GECluster) -> None:
    hosts = gridengine_cluster.run(["qconf", "-sel"], user="root").stdout.split()
    assert sorted(hosts) == ["genode1", "genode2"]
    for host in ["gemaster", *hosts]:
        address = socket.gethostbyname(host)
        assert socket.gethostbyaddr(address)[0] == host
    assert gridengine_cluster.run("hostname", user="kirby").stdout.strip() == "gemaster"


def test_the_cell_runs_on_its_own_ports_with_min_uid_1000_and_accounting_on(gridengine_cluster: GECluster) -> None:
    conf = gridengine_cluster.run(["qconf", "-sconf"], user="root").stdout
    assert "min_uid                      1000" in conf and "accounting=true" in conf
    assert "max_jobid" not in conf.lower()  # no setting: the wrap is compiled in (9,999,999)
    with socket.create_connection(("127.0.0.1", gridengine_cluster.ports["qmaster"]), timeout=2):
        pass
    assert gridengine_cluster.run(["qconf", "-so"], user="root").stdout.split() == ["jarvice"]


def test_the_parallel_environment_gives_one_slot_a_host_and_tight_integration(gridengine_cluster: GECluster) -> None:
    pe = dict(
        line.split(None, 1)
        for line in gridengine_cluster.run(["qconf", "-sp", "dssr"], user="root").stdout.splitlines()
    )
    assert (pe["allocation_rule"].strip(), pe["control_slaves"].strip()) == ("1", "TRUE")


def test_an_operator_releases_and_deletes_other_users_jobs_and_an_other_user_cannot(
    gridengine_cluster: GECluster,
) -> None:
    jobid = qsub_held(gridengine_cluster, "jarvice_fact-op")
    denied = gridengine_cluster.run(["qdel", jobid], user="mario", check=False)
    assert "is not allowed" in denied.stdout + denied.stderr or denied.returncode != 0
    seen = gridengine_cluster.run(["qstat", "-u", "*"], user="jarvice").stdout
    assert jobid in seen and "hqw" in seen
    gridengine_cluster.run(["qdel", jobid], user="jarvice")


def test_a_job_deleted_before_it_started_leaves_no_accounting_and_an_ended_one_leaves_qstat_at_once(
    gridengine_cluster: GECluster,
) -> None:
    pending = qsub_held(gridengine_cluster, "jarvice_fact-p")
    gridengine_cluster.run(["qdel", pending], user="jarvice")
    ran = gridengine_cluster.run(
        "cd /tmp && qsub -terse -sync y -N jarvice_fact-r -o /dev/null -j y -b y 'exit 3'", user="kirby", check=False
    )
    jobid = ran.stdout.strip().splitlines()[0]
    assert jobid not in gridengine_cluster.run(["qstat", "-u", "*"], user="root").stdout.split()
    records = [
        line.split(":") for line in gridengine_cluster.accounting_file.read_text().splitlines() if line.count(":") >= 44
    ]
    mine = [r for r in records if r[5] == jobid and r[4] == "jarvice_fact-r"]
    assert [(r[11], r[12]) for r in mine] == [("0", "3")]
    assert not [r for r in records if r[5] == pending and r[4] == "jarvice_fact-p"]


def test_ids_wrap_after_9999999_and_submit_once_still_takes_the_older_job(gridengine_cluster: GECluster) -> None:
    gridengine.set_last_jobid(9_999_998)
    name = unique_name("wrap")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(ge_env(gridengine_cluster, Path(tmp)))
        ds = Downstream(GridEngineConnector(settings), ShellExecutor(settings))
        try:
            spec = JobSpec(
                name=name, command="sleep 20", identity=Identity(email="kirby@example.com"), exclusive=False, held=True
            )
            first = ds.submit(spec)
            assert first.jobid == "9999999"
            duplicate = qsub_held(gridengine_cluster, f"jarvice_{name}")  # another server's, after the wrap
            assert duplicate == "1"
            again = ds.submit(spec)
            assert (again.jobid, again.existed) == ("9999999", True)
            time.sleep(1)
            left = gridengine_cluster.run(["qstat", "-u", "*"], user="root").stdout.split("\n")[2:]
            assert [line.split()[0] for line in left if line.strip()] == ["9999999"]  # the newer one was deleted
        finally:
            gridengine_cluster.run(["qdel", "-u", "kirby"], user="root", check=False)
            ds.close()
