"""The cluster's nodes and partitions read from scontrol's one-line records and slurmrestd's JSON.

The texts below are stand-ins written in the shapes Slurm 22.05/24.11 print
(``scontrol -o``) and slurmrestd v0.0.38 / v0.0.40+ answer; the real daemons
are read by tests/slurm/test_v1_cluster.py.
"""

from __future__ import annotations

from dssr_slurm.resources import parse_rest, parse_scontrol

NODES = (
    "NodeName=node1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=1 CPUEfctv=2 CPUTot=2 CPULoad=0.10 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=gpu:2 NodeAddr=10.0.0.1 NodeHostName=node1 "
    "Version=22.05.8 OS=Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 RealMemory=2000 "
    "AllocMem=500 FreeMem=1500 Sockets=2 State=MIXED ThreadsPerCore=1 Partitions=debug,gpu "
    "CfgTRES=cpu=2,mem=2000M,billing=2,gres/gpu=2 AllocTRES=cpu=1,mem=500M,gres/gpu=1 Reason=none [root@x]\n"
    "NodeName=node2 CPUAlloc=0 CPUTot=4 RealMemory=1000 AllocMem=0 State=IDLE+DRAIN Partitions=debug "
    "Gres=gpu:4 GresUsed=gpu:(null):3(IDX:0-2) "
    "CfgTRES=cpu=4,mem=1000M AllocTRES= Reason=Maintenance window=soon [root@x]\n"
)
PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL Default=YES Nodes=node[1-2] State=UP TotalCPUs=6\n"
    "PartitionName=gpu AllowGroups=ALL Default=NO Nodes=node1 State=DOWN\n"
)


def test_scontrol_records_give_total_and_free_cpus_gpus_and_memory_per_node() -> None:
    info = parse_scontrol(NODES, PARTITIONS)
    one, two = info.nodes
    assert (one.name, one.state, one.partitions) == ("node1", "mixed", ("debug", "gpu"))
    assert (one.cpus, one.free_cpus, one.gpus, one.free_gpus) == (2, 1, 2, 1)
    assert (one.memory_mb, one.free_memory_mb) == (2000, 1500)
    # no gres/gpu in its TRES (accounting does not track it): Gres= and GresUsed= say the GPUs
    assert (two.cpus, two.free_cpus, two.gpus, two.free_gpus, two.state) == (4, 4, 4, 1, "idle+drain")
    debug, gpu = info.partitions
    assert (debug.nodes, debug.default, debug.state) == (("node1", "node2"), True, "up")
    assert (gpu.nodes, gpu.default, gpu.state) == (("node1",), False, "down")


def test_rest_v0038_strings_and_v004x_objects_read_alike() -> None:
    old = parse_rest(
        [
            {
                "name": "node1",
                "state": "mixed",
                "cpus": 2,
                "alloc_cpus": 1,
                "real_memory": 2000,
                "alloc_memory": 500,
                "gres": "gpu:2",
                "gres_used": "gpu:(null):1(IDX:0)",
                "partitions": ["debug"],
            }
        ],
        [{"name": "debug", "nodes": "node[1-2]", "state": "UP", "flags": ["default"]}],
    )
    new = parse_rest(
        [
            {
                "name": "node1",
                "state": ["MIXED"],
                "cpus": 2,
                "alloc_cpus": 1,
                "real_memory": {"set": True, "infinite": False, "number": 2000},
                "alloc_memory": 500,
                "gres": "gpu:tesla:2(S:0)",
                "gres_used": "gpu:tesla:1(IDX:0)",
                "partitions": ["debug"],
            }
        ],
        [
            {
                "name": "debug",
                "nodes": {"configured": "node[1-2]", "total": 2},
                "partition": {"state": ["UP"]},
                "flags": ["DEFAULT"],
            }
        ],
    )
    assert old == new
    (node,) = new.nodes
    assert (node.cpus, node.free_cpus, node.gpus, node.free_gpus, node.free_memory_mb) == (2, 1, 2, 1, 1500)
    assert new.partitions[0].nodes == ("node1", "node2") and new.partitions[0].default


def test_junk_entries_are_skipped_and_missing_values_read_as_zero() -> None:
    info = parse_rest([None, {"name": 3}, {"name": "n"}], ["x", {"name": "p"}])
    assert [n.name for n in info.nodes] == ["n"] and info.nodes[0].cpus == 0
    assert [p.nodes for p in info.partitions] == [()]
    assert parse_scontrol("garbage\n", "\n").nodes == ()
