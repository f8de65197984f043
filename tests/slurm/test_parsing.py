"""squeue/sacct output is read correctly whatever other users name their jobs."""

from __future__ import annotations

import pytest

from dssr_core import ClusterError
from dssr_slurm.parsing import SEP, parse_sacct, parse_squeue

MARK = "\x1eabc123" + SEP


def rec(
    jobid: str,
    user: str,
    state: str,
    elapsed: str,
    nodes: str,
    name: str,
    reason: str = "None",
    times: tuple[str, str, str] = ("1796184170", "N/A", "N/A"),
    comment: str = "",
) -> str:
    return MARK + SEP.join([jobid, user, state, elapsed, nodes, reason, *times, comment, name]) + "\n"


def test_squeue_lists_only_jarvice_jobs_with_expanded_nodes_and_normalised_times() -> None:
    text = (
        rec("12", "kirby", "RUNNING", "1-02:03:04", "node[1-2]", "jarvice_a")
        + rec("13", "bob", "RUNNING", "5:00", "node1", "other")
        + rec("14", "mario", "PENDING", "0:00", "", "jarvice_b")
    )
    jobs = parse_squeue(text, MARK, "jarvice_")
    assert [(j.jobid, j.user, j.state, j.elapsed, j.nodes) for j in jobs] == [
        ("12", "kirby", "RUNNING", "26:03:04", ("node1", "node2")),
        ("14", "mario", "PENDING", "00:00:00", ()),
    ]


def test_squeue_gives_times_as_epoch_seconds_and_the_comment() -> None:
    text = rec(
        "12",
        "kirby",
        "RUNNING",
        "0:05",
        "node1",
        "jarvice_a",
        times=("1796184170", "1796184175", "1796187775"),
        comment="dssr1-ab",
    ) + rec("14", "kirby", "PENDING", "0:00", "", "jarvice_b", times=("1796184170", "N/A", "N/A"))
    running, pending = parse_squeue(text, MARK, "jarvice_")
    assert (running.submitted, running.started, running.ended, running.comment) == (
        1796184170.0,
        1796184175.0,
        1796187775.0,
        "dssr1-ab",
    )
    assert (pending.submitted, pending.started, pending.ended, pending.comment) == (1796184170.0, None, None, "")


def test_squeue_name_with_separator_stays_in_the_name_field() -> None:
    jobs = parse_squeue(rec("7", "kirby", "RUNNING", "0:01", "node1", "jarvice_x" + SEP + "y"), MARK, "jarvice_")
    assert jobs[0].name == "jarvice_x" + SEP + "y" and jobs[0].user == "kirby"


def test_squeue_name_with_newline_cannot_forge_a_record() -> None:
    forged = (
        "evil\n"
        + "\x1eguess"
        + SEP
        + SEP.join(["99", "kirby", "RUNNING", "0:01", "node1", "None", "1", "2", "3", "", "jarvice_fake"])
    )
    text = rec("8", "bob", "RUNNING", "0:01", "node1", forged) + rec(
        "9", "kirby", "PENDING", "0:00", "", "jarvice_real"
    )
    jobs = parse_squeue(text, MARK, "jarvice_")
    assert [j.jobid for j in jobs] == ["9"]


def test_squeue_empty_output_is_no_jobs() -> None:
    assert parse_squeue("", MARK, "jarvice_") == []


def test_squeue_garbage_is_a_cluster_error_not_an_empty_list() -> None:
    with pytest.raises(ClusterError):
        parse_squeue("slurm_load_jobs error: Socket timed out\n", MARK, "jarvice_")


def test_sacct_records_keep_only_asked_ids_and_strip_cancelled_by() -> None:
    text = (
        SEP.join(["5", "kirby", "CANCELLED by 1002", "0:15", "00:01:02", "100", "Unknown", "160", "jarvice_a"])
        + "\n"
        + SEP.join(["6", "mario", "COMPLETED", "0:0", "1-00:00:01", "100", "101", "86502", "jarvice_b"])
        + "\n"
    )
    records = parse_sacct(text, ["5", "6", "7"])
    assert records["5"].state == "CANCELLED" and records["5"].user == "kirby" and records["5"].elapsed == "00:01:02"
    assert records["6"].elapsed == "24:00:01"
    # times are seconds since the epoch (SLURM_TIME_FORMAT=%s); Slurm's "Unknown" is no time
    assert (records["5"].submitted, records["5"].started, records["5"].ended) == (100.0, None, 160.0)
    assert (records["6"].submitted, records["6"].started, records["6"].ended) == (100.0, 101.0, 86502.0)
    assert "7" not in records


def test_sacct_multiline_name_does_not_break_the_next_record() -> None:
    text = (
        SEP.join(["5", "kirby", "FAILED", "1:0", "00:00:01", "1", "2", "3", "jarvice_a\n6" + SEP + "x"])
        + "\n"
        + SEP.join(["6", "kirby", "COMPLETED", "0:0", "00:00:02", "1", "2", "3", "jarvice_b"])
        + "\n"
    )
    records = parse_sacct(text, ["5", "6"])
    assert records["6"].state == "COMPLETED"
    assert records["5"].state == "FAILED"


def test_sinfo_gives_the_clusters_shape_with_its_default_partition_and_limits() -> None:
    from dssr_slurm.parsing import parse_sinfo

    shape = parse_sinfo(
        "node1|16|16000|gpu:2|debug*|1-infinite\nnode2|16|16000|gpu:2|debug*|1-infinite\n"
        "node2|16|16000|gpu:2|long|2-4\nbig|64|512000|(null)|long|2-4\n"
    )
    assert [(n.name, n.cpus, n.memory_mb, n.gpus, n.partitions) for n in shape.nodes] == [
        ("node1", 16, 16000, 2, ("debug",)),
        ("node2", 16, 16000, 2, ("debug", "long")),
        ("big", 64, 512000, 0, ("long",)),
    ]
    debug, long = shape.partitions["debug"], shape.partitions["long"]
    assert (debug.default, debug.min_nodes, debug.max_nodes) == (True, 1, None)
    assert (long.default, long.min_nodes, long.max_nodes) == (False, 2, 4)
