"""The Singularity executor on the real test cluster (Slurm 22.05, two nodes), through the Slurm connector.

The nodes run the Apptainer stand-in (tests/standin/apptainer) as ``apptainer``
and ``singularity``: it checks every call against Apptainer's command line and
records it in the job folder, which is what these tests read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from dssr_core import BadRequest, JobSpec, JobState, Settings

from .cluster_support import (connector_settings, downstream, identity, job_dir, of, sha, standin_calls, submit,
                              unique, wait_end)
from .helpers import b64, template_text

pytestmark = pytest.mark.cluster

try:
    from dssr_slurm.connector import SlurmConnector
except ImportError as exc:  # pragma: no cover - only while the Slurm connector is missing
    pytest.skip(f"the Slurm connector cannot be imported ({exc})", allow_module_level=True)


@pytest.fixture(scope="module")
def cluster(request):
    try:
        return request.getfixturevalue("slurm_cluster")
    except pytest.FixtureLookupError:
        # development runs without the cluster tier's fixtures: reuse a cluster brought up by hand
        from tests.cluster import harness

        found = harness.load() if os.environ.get("DSSR_CLUSTER_REUSE") and harness.alive() else None
        if found is None:
            pytest.skip("no slurm_cluster fixture and no running test cluster (python tests/cluster/harness.py up)")
        return found


@pytest.fixture(scope="module")
def connector(cluster, tmp_path_factory):
    conn = SlurmConnector(Settings(connector_settings(cluster, tmp_path_factory.mktemp("slurm"))))
    yield conn
    conn.close()


def native(cluster, user="kirby", **kwargs) -> JobSpec:
    values = dict(name=unique("sing"), nodes=2, image=f"docker.io/library/ubuntu:{unique('t')}",
                  command='echo "rank $PROCESS_PROCID of $JOB_NNODES on $(hostname) in $PWD"',
                  identity=identity(cluster, user))
    values.update(kwargs)
    return JobSpec(**values)


def test_native_two_node_job_completes_with_one_pull_and_an_overlay_per_node(cluster, connector):
    ds = downstream(connector, JARVICE_SINGULARITY_OVERLAY_SIZE="16")
    spec = native(cluster)
    ref, _ = submit(ds, spec)
    status = wait_end(ds, ref)
    assert status.state is JobState.COMPLETED, status.output
    assert "rank 0 of 2" in status.output and "rank 1 of 2" in status.output
    calls = standin_calls(cluster, "kirby", spec.name)
    assert len(of(calls, "pull")) == 1
    overlays = sorted(argv[-1] for argv in of(calls, "overlay"))
    assert [Path(o).name for o in overlays] == ["overlay-0.img", "overlay-1.img"]
    assert {c["nodename"] for c in calls if "exec" in c["argv"]} == set(cluster.nodes)
    assert all(argv[0] == "-s" for argv in (c["argv"] for c in calls))
    assert all("--overlay" in argv for argv in of(calls, "exec"))
    assert not any("--nv" in argv for argv in of(calls, "exec"))  # no GPU asked, none given
    assert not list(job_dir(cluster, "kirby", spec.name).glob("overlay-*.img"))
    connector.cleanup(ref)


def test_gpu_job_gets_slurm_gpus_on_every_node_and_runs_with_nv(cluster, connector):
    if not cluster.gpus_per_node:
        pytest.fail(f"{cluster.name} declares no GPUs (tests/cluster/harness.py NODE_GPUS)")
    ds = downstream(connector, JARVICE_SINGULARITY_OVERLAY_SIZE="0")
    spec = native(cluster, gpus=1, command='echo "rank $PROCESS_PROCID gpus=$JOB_GPUS_PER_NODE cuda=$CUDA_VISIBLE_DEVICES"')
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


def test_native_job_rank_0_exit_code_is_the_jobs_and_size_0_means_writable_tmpfs_with_verbose(cluster, connector):
    ds = downstream(connector, JARVICE_SINGULARITY_VERBOSE="true")
    spec = native(cluster, nodes=1, overlay_mb=0, command="exit 3")
    ref, _ = submit(ds, spec)
    status = wait_end(ds, ref)
    assert status.state is JobState.FAILED
    calls = standin_calls(cluster, "kirby", spec.name)
    assert of(calls, "overlay") == []
    assert all("--writable-tmpfs" in argv for argv in of(calls, "exec"))
    assert calls and all(c["argv"][0] == "-v" for c in calls)
    connector.cleanup(ref)


def test_two_concurrent_jobs_of_the_same_image_pull_it_once(cluster, connector):
    ds = downstream(connector, JARVICE_SINGULARITY_OVERLAY_SIZE="0")
    image = f"docker.io/library/ubuntu:{unique('shared')}"
    specs = [native(cluster, user=u, image=image, nodes=1, exclusive=False, command="sleep 1") for u in
             ("kirby", "mario")]
    refs: list = [None, None]

    def go(i: int) -> None:
        refs[i] = submit(ds, specs[i])[0]

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ref in refs:
        assert wait_end(ds, ref).state is JobState.COMPLETED
    pulls = [p for spec, u in zip(specs, ("kirby", "mario")) for p in of(standin_calls(cluster, u, spec.name), "pull")]
    assert len(pulls) == 1
    for ref in refs:
        connector.cleanup(ref)


def test_a_failing_command_on_rank_1_ends_the_job_as_failed(cluster, connector):
    ds = downstream(connector, JARVICE_SINGULARITY_OVERLAY_SIZE="0")
    spec = native(cluster, command='if [ "$PROCESS_PROCID" = 1 ]; then exit 7; fi; sleep 90; echo finished')
    started = time.monotonic()
    ref, _ = submit(ds, spec)
    status = wait_end(ds, ref)
    assert status.state is JobState.FAILED
    assert time.monotonic() - started < 80
    assert "finished" not in status.output
    connector.cleanup(ref)


def batch_script_text(cluster, user: str, jobid: str) -> str:
    return cluster.run(["scontrol", "write", "batch_script", jobid, "-"], user=user).stdout


def test_credentialed_image_goes_to_the_private_cache_and_no_credential_leaks(cluster, connector, caplog):
    caplog.set_level(logging.DEBUG)
    password = unique("pull-S3cret")
    ds = downstream(connector, JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64(password),
                    JARVICE_SINGULARITY_OVERLAY_SIZE="0")
    spec = native(cluster, nodes=2, image=f"us-docker.pkg.dev/jarvice-system/images/private-{unique('app')}:1")
    ref, fscript = submit(ds, spec)
    batch = batch_script_text(cluster, "kirby", ref.jobid)
    status = wait_end(ds, ref)
    assert status.state is JobState.COMPLETED, status.output
    private = list((Path(cluster.scratch) / "users" / "kirby" / "images").glob("us-docker.pkg.dev_*private-*.sif"))
    assert any(spec.image.split("/")[-1].replace(":", "_") in p.name for p in private)
    (pull,) = of(standin_calls(cluster, "kirby", spec.name), "pull")
    assert "APPTAINER_DOCKER_PASSWORD" in next(c for c in standin_calls(cluster, "kirby", spec.name)
                                                if c["argv"] == pull)["credentials"]
    for text in (fscript, batch, status.output, caplog.text):
        assert password not in text and b64(password) not in text
    connector.cleanup(ref)
    assert not job_dir(cluster, "kirby", spec.name).exists()


def test_template_job_completes_with_the_success_marker_and_no_credential_leaks(cluster, connector, caplog):
    caplog.set_level(logging.DEBUG)
    app_password, init_password = unique("app-S3cret"), unique("init-S3cret")
    ds = downstream(connector, JARVICE_DOCKER_USERNAME=b64("sysuser"), JARVICE_DOCKER_PASSWORD=b64(init_password))
    cmd = """/bin/echo "it's" 'a "quoted"' command"""
    body = "\n".join([
        'echo "overlay=$JARVICE_SINGULARITY_OVERLAY_SIZE flag=$SV_FLAG app=$JARVICE_APP_IMAGE"',
        f'[ "$(printf %s "$JARVICE_DOCKER_PASSWORD" | base64 -d | sha256sum | cut -c1-64)" = {sha(app_password)} ] '
        '&& echo "credentials reached rank $PROCESS_PROCID"',
        'out=$(eval "$JARVICE_CMD") && echo "cmd said: $out"',
        'if [ "$PROCESS_PROCID" = 0 ] && [ -n "$out" ]; then echo JARVICE_CMD_SUCCESS; fi',
    ])
    text = template_text(cmd=cmd, devices='["overlay=0"]', body=body, repo="quay.io/acme/private-app:1",
                         docker_secret={"server": "quay.io", "username": "appuser", "password": app_password})
    from dssr_core import parse_template

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
