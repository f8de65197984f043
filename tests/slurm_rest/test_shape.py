"""A job no node can run is refused before it is submitted over slurmrestd, judged from the nodes and
partitions slurmrestd describes (recorded from the real slurmrestd of every version: samples/*/nodes.json,
partitions.json); a job that fits is submitted and released with no look; only what the shape cannot judge
waits for slurmctld's look after the release."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dssr_core import BadRequest, Identity, JobSpec, Launch
from dssr_core.batch import JobFiles, JobPlan
from dssr_slurm.backend import BatchRequest
from dssr_slurm.rest.adapter import shape_of
from dssr_slurm.rest.transport import Response
from dssr_slurm.shape import FITS, UNDECIDED, Partition, Shape

from .samples import VERSIONS, load
from .test_refusals import backend


def shape(version: str) -> Shape:
    return shape_of(load(version, "nodes").body, load(version, "partitions").body)


def ask(**kw: Any) -> BatchRequest:
    fields: dict[str, Any] = dict(
        name="jarvice_x",
        user="kirby",
        script="#!/bin/bash\n",
        nodes=1,
        ntasks=1,
        exclusive=False,
        workdir="/w",
        output="/w/x.out",
    )
    fields.update(kw)
    return BatchRequest(**fields)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_versions_nodes_and_partitions_are_read(version: str) -> None:
    cluster = shape(version)
    assert cluster.nodes and all(
        n.cpus == 16 and n.memory_mb == 16000 and n.partitions == ("debug",) for n in cluster.nodes
    )
    assert list(cluster.partitions) == ["debug"]
    assert cluster.partitions["debug"].max_nodes is None and cluster.partitions["debug"].min_nodes == 0
    # the 22.05 and 24.11 test clusters have 2 (stand-in) GPUs per node; the 26.05 one none
    assert {n.gpus for n in cluster.nodes} == ({0} if version >= "v0.0.43" else {2})


@pytest.mark.parametrize("version", VERSIONS)
def test_what_the_cluster_has_fits_and_one_more_of_anything_never_runs(version: str) -> None:
    cluster = shape(version)
    nodes, gpus = len(cluster.nodes), cluster.nodes[0].gpus
    assert cluster.verdict(ask(nodes=nodes, ntasks=nodes * 16, gpus_per_node=gpus, memory_gb=15)) == FITS
    assert cluster.verdict(ask(nodes=nodes + 1)).reason == "PartitionNodeLimit"
    assert cluster.verdict(ask(memory_gb=16)).reason == "BadConstraints"  # 16 GB is more than 16000 MB
    assert cluster.verdict(ask(gpus_per_node=gpus + 1)).reason == "BadConstraints"
    assert cluster.verdict(ask(nodes=nodes, ntasks=nodes * 16 + 1)).reason == "PartitionConfig"
    assert cluster.verdict(ask(partition="debug", nodes=nodes + 1)).reason == "PartitionNodeLimit"


@pytest.mark.parametrize("version", VERSIONS)
def test_what_the_shape_cannot_judge_is_left_to_slurmctld(version: str) -> None:
    cluster = shape(version)
    assert cluster.verdict(ask(extra={"constraint": "fast"})) == UNDECIDED
    assert cluster.verdict(ask(licenses="fluent:1")) == UNDECIDED
    assert cluster.verdict(ask(partition="nosuchpartition")) == UNDECIDED


def test_a_partitions_node_limits_are_slurms_partition_node_limit() -> None:
    cluster = shape("v0.0.42")
    limited = replace(cluster, partitions={"debug": Partition("debug", True, min_nodes=1, max_nodes=0)})
    assert limited.verdict(ask()).reason == "PartitionNodeLimit"


def test_with_several_partitions_and_no_default_named_only_a_common_answer_is_decided() -> None:
    one = shape("v0.0.42")  # v0.0.40-v0.0.42 do not say which partition is the default
    node = replace(one.nodes[0], name="big", memory_mb=64000, partitions=("big",))
    two = Shape((*one.nodes, node), {**one.partitions, "big": Partition("big", False, 0, None)})
    assert two.verdict(ask()) == FITS
    assert two.verdict(ask(memory_gb=32)) == UNDECIDED  # fits "big", not "debug": the default decides
    assert two.verdict(ask(memory_gb=99)).reason == "BadConstraints"
    named = replace(two, partitions={**two.partitions, "big": Partition("big", True, 0, None)})
    assert named.verdict(ask(memory_gb=32)) == FITS


def test_gpu_counts_are_read_from_every_form_of_gres() -> None:
    body = {
        "nodes": [
            {
                "name": "g",
                "cpus": 8,
                "real_memory": 1000,
                "partitions": ["p"],
                "gres": "gpu:a100:4(S:0-1),gpu:t4:2,mps:100",
            }
        ]
    }
    assert shape_of(body, {"partitions": []}).nodes[0].gpus == 6


def plan(version: str, **spec: Any) -> JobPlan:
    identity = Identity(email="kirby@example.com", username="kirby", claims={"sun": "kirby"}, token="t")
    files = JobFiles(
        job_dir="/s/users/kirby/jarvice_x", output="/s/users/kirby/jarvice_x.out", user_scratch="/s/users/kirby"
    )
    return JobPlan(
        JobSpec(name="x", command="true", identity=identity, exclusive=False, **spec),
        "jarvice_x",
        "kirby",
        files,
        Launch(node_script="true\n"),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_a_job_no_node_can_run_is_refused_before_anything_is_submitted(version: str) -> None:
    rest, client = backend(
        version,
        GET_nodes=[load(version, "nodes")],
        GET_partitions=[load(version, "partitions")],
        GET_jobs=[Response(200, {"jobs": []}, "{}")],
    )
    with pytest.raises(BadRequest, match="Slurm refused the job: Requested node configuration is not available"):
        rest.submit(plan(version, memory_gb=99_999))
    assert not [call for call in client.calls if call.startswith("POST")]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_job_that_fits_is_answered_after_its_release_with_no_look(version: str) -> None:
    held = load(version, "jobs")
    submitted = load(version, "submit_held")
    jobid = str(submitted.body["job_id"])
    listed = [
        dict(job, name="jarvice_x", user_name="kirby", user="kirby")
        for job in held.body["jobs"]
        if str(job.get("job_id")) == jobid
    ]
    rest, client = backend(
        version,
        GET_nodes=[load(version, "nodes")],
        GET_partitions=[load(version, "partitions")],
        GET_jobs=[Response(200, {"jobs": []}, "{}"), Response(200, {"jobs": listed}, "{}")],
        POST_submit=[submitted],
        **{f"POST_{jobid}": [Response(200, {}, "{}")]},
    )
    assert rest.submit(plan(version)).jobid == jobid
    assert f"GET /slurm/{version}/job/{jobid}" not in client.calls
    assert [c for c in client.calls if c.startswith("POST")] == [
        f"POST /slurm/{version}/job/submit",
        f"POST /slurm/{version}/job/{jobid}",
    ]


def test_a_shape_that_cannot_be_read_leaves_jobs_undecided_and_is_not_read_again_within_its_ttl() -> None:
    from dssr_core import ClusterError
    from dssr_slurm.shape import ShapeCheck

    reads: list[int] = []

    def down() -> Shape:
        reads.append(1)
        raise ClusterError("sinfo: Unable to contact slurm controller")

    check = ShapeCheck(down, ttl=60.0)
    assert check.verdict(ask()) == UNDECIDED
    assert check.refuse(ask(memory_gb=99_999)) == UNDECIDED  # nothing to refuse by: Slurm itself judges
    assert reads == [1]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_spec_digest_goes_in_the_comment_unless_the_spec_gives_one_and_changes_no_verdict(version: str) -> None:
    from dssr_slurm.backend import batch_request
    from dssr_slurm.rest.versions import adapter_for

    mine = plan(version, cores=2)
    request = batch_request(mine, "#!/bin/bash\n", workdir="/s")
    assert adapter_for(version).submit_body(request)["job"]["comment"] == mine.spec.digest()
    assert f"--comment={mine.spec.digest()}" in request.sbatch_options()
    theirs = batch_request(plan(version, scheduler_flags={"comment": "site note"}), "#!/bin/bash\n", workdir="/s")
    assert theirs.extra["comment"] == "site note"
    huge = batch_request(plan(version, memory_gb=99_999), "#!/bin/bash\n", workdir="/s")
    shape = shape_of(load(version, "nodes").body, load(version, "partitions").body)
    assert shape.verdict(huge).decided  # the comment does not make a job the cluster's shape cannot judge
