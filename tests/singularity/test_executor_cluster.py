"""The Singularity executor on the Debian 12 cluster (Slurm 22.05, two nodes): what only it can show.

Everything a container runtime does is proven on the real Apptainer (Slurm 26.05
cluster, test_executor_apptainer.py). What stays here needs this cluster's
stand-in GPUs (device files Slurm's gres/gpu plugin schedules): GPU jobs get
Slurm's GPUs and ``--nv``, read from the call log of the Apptainer **stand-in**
(tests/standin/apptainer, which is not Apptainer: no container runs here); and
an upstream template's quoting and credentials, which involve no runtime call.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dssr_core import BadRequest, JobSpec, JobState
from tests.cluster import Cluster

from .cluster_support import downstream, identity, of, sha, slurm_fixtures, standin_calls, submit, unique, wait_end
from .helpers import b64, template_text

pytestmark = pytest.mark.cluster

pytest.importorskip("dssr_slurm.connector", reason="the Slurm connector cannot be imported")


cluster, connector = slurm_fixtures("slurm_cluster")


def native(cluster, user="kirby", **kwargs) -> JobSpec:
    values: dict[str, Any] = dict(
        name=unique("sing"),
        nodes=2,
        image=f"docker.io/library/ubuntu:{unique('t')}",
        command='echo "rank $PROCESS_PROCID of $JOB_NNODES on $(hostname) in $PWD"',
        identity=identity(cluster, user),
    )
    values.update(kwargs)
    return JobSpec(**values)


def test_gpu_job_gets_slurm_gpus_on_every_node_and_runs_with_nv(cluster, connector):
    if not cluster.gpus_per_node:
        pytest.fail(f"{cluster.name} declares no GPUs (tests/cluster/slurmconf.py NODE_GPUS)")
    ds = downstream(connector, JARVICE_SINGULARITY_OVERLAY_SIZE="0")
    spec = native(
        cluster, gpus=1, command='echo "rank $PROCESS_PROCID gpus=$JOB_GPUS_PER_NODE cuda=$CUDA_VISIBLE_DEVICES"'
    )
    ref, _ = submit(ds, spec)
    status = wait_end(ds, ref)
    assert status.state is JobState.COMPLETED, status.output
    # CUDA_VISIBLE_DEVICES comes from Slurm's gres/gpu allocation on each node, not from dssr
    assert "rank 0 gpus=1 cuda=0" in status.output and "rank 1 gpus=1 cuda=0" in status.output, status.output
    calls = standin_calls(cluster, "kirby", spec.name)
    assert {c["nodename"] for c in calls if "exec" in c["argv"]} == set(cluster.nodes)
    assert of(calls, "exec") and all("--nv" in argv for argv in of(calls, "exec"))
    connector.cleanup(ref)


def test_a_job_asking_more_gpus_than_a_node_has_is_refused_and_nothing_runs(cluster, connector):
    ds = downstream(connector, JARVICE_SINGULARITY_OVERLAY_SIZE="0")
    spec = native(cluster, nodes=1, gpus=cluster.gpus_per_node + 1)
    with pytest.raises(BadRequest) as err:
        ds.submit(spec)
    assert "Requested node configuration is not available" in str(err.value), err.value
    assert standin_calls(cluster, "kirby", spec.name) == []


def batch_script_text(cluster: Cluster, user: str, jobid: str) -> str:
    return str(cluster.run(["scontrol", "write", "batch_script", jobid, "-"], user=user).stdout)


def test_template_job_completes_with_the_success_marker_and_no_credential_leaks(cluster, connector, caplog):
    caplog.set_level(logging.DEBUG)
    app_password, init_password = unique("app-S3cret"), unique("init-S3cret")
    ds = downstream(connector, JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64(init_password))
    cmd = """/bin/echo "it's" 'a "quoted"' command"""
    body = "\n".join(
        [
            'echo "overlay=$JARVICE_SINGULARITY_OVERLAY_SIZE flag=$SV_FLAG app=$JARVICE_APP_IMAGE"',
            f'[ "$(printf %s "$JARVICE_DOCKER_PASSWORD" | base64 -d | sha256sum | cut -c1-64)" = {sha(app_password)} ] '
            '&& echo "credentials reached rank $PROCESS_PROCID"',
            'out=$(eval "$JARVICE_CMD") && echo "cmd said: $out"',
            'if [ "$PROCESS_PROCID" = 0 ] && [ -n "$out" ]; then echo JARVICE_CMD_SUCCESS; fi',
        ]
    )
    text = template_text(
        cmd=cmd,
        devices='["overlay=0"]',
        body=body,
        repo="quay.io/acme/private-app:1",
        docker_secret={"server": "quay.io", "username": "appuser", "password": app_password},
    )
    from dssr_core._upstream import parse_template

    spec = parse_template(text, 2, unique("tmpl"), 7).replace(identity=identity(cluster, "kirby"))
    ref, fscript = submit(ds, spec)
    batch = batch_script_text(cluster, "kirby", ref.jobid)
    status = wait_end(ds, ref)
    assert status.state is JobState.COMPLETED, status.output
    assert "overlay=0 flag=-s app=docker://quay.io/acme/private-app:1" in status.output
    assert "credentials reached rank 0" in status.output and "credentials reached rank 1" in status.output
    assert """cmd said: it's a "quoted" command""" in status.output
    for text_ in (fscript, batch, status.output, caplog.text):
        for secret in (app_password, init_password, b64(app_password), b64(init_password)):
            assert secret not in text_
    connector.cleanup(ref)
