"""squeue/sacct output is read correctly whatever other users name their jobs."""

from __future__ import annotations

import pytest

from dssr_core import ClusterError
from dssr_slurm.parsing import SEP, parse_sacct, parse_squeue

MARK = "\x1eabc123" + SEP


def rec(jobid: str, user: str, state: str, elapsed: str, nodes: str, name: str, reason: str = "None") -> str:
    return MARK + SEP.join([jobid, user, state, elapsed, nodes, reason, name]) + "\n"


def test_squeue_lists_only_jarvice_jobs_with_expanded_nodes_and_normalised_times() -> None:
    text = rec("12", "kirby", "RUNNING", "1-02:03:04", "node[1-2]", "jarvice_a") + rec(
        "13", "bob", "RUNNING", "5:00", "node1", "other") + rec("14", "mario", "PENDING", "0:00", "", "jarvice_b")
    jobs = parse_squeue(text, MARK, "jarvice_")
    assert [(j.jobid, j.user, j.state, j.elapsed, j.nodes) for j in jobs] == [
        ("12", "kirby", "RUNNING", "26:03:04", ("node1", "node2")),
        ("14", "mario", "PENDING", "00:00:00", ()),
    ]


def test_squeue_name_with_separator_stays_in_the_name_field() -> None:
    jobs = parse_squeue(rec("7", "kirby", "RUNNING", "0:01", "node1", "jarvice_x" + SEP + "y"), MARK, "jarvice_")
    assert jobs[0].name == "jarvice_x" + SEP + "y" and jobs[0].user == "kirby"


def test_squeue_name_with_newline_cannot_forge_a_record() -> None:
    forged = "evil\n" + "\x1eguess" + SEP + SEP.join(["99", "kirby", "RUNNING", "0:01", "node1", "None", "jarvice_fake"])
    text = rec("8", "bob", "RUNNING", "0:01", "node1", forged) + rec("9", "kirby", "PENDING", "0:00", "", "jarvice_real")
    jobs = parse_squeue(text, MARK, "jarvice_")
    assert [j.jobid for j in jobs] == ["9"]


def test_squeue_empty_output_is_no_jobs() -> None:
    assert parse_squeue("", MARK, "jarvice_") == []


def test_squeue_garbage_is_a_cluster_error_not_an_empty_list() -> None:
    with pytest.raises(ClusterError):
        parse_squeue("slurm_load_jobs error: Socket timed out\n", MARK, "jarvice_")


def test_sacct_records_keep_only_asked_ids_and_strip_cancelled_by() -> None:
    text = (
        SEP.join(["5", "kirby", "CANCELLED by 1002", "0:15", "00:01:02", "jarvice_a"]) + "\n"
        + SEP.join(["6", "mario", "COMPLETED", "0:0", "1-00:00:01", "jarvice_b"]) + "\n"
    )
    records = parse_sacct(text, ["5", "6", "7"])
    assert records["5"].state == "CANCELLED" and records["5"].user == "kirby" and records["5"].elapsed == "00:01:02"
    assert records["6"].elapsed == "24:00:01"
    assert "7" not in records


def test_sacct_multiline_name_does_not_break_the_next_record() -> None:
    text = (
        SEP.join(["5", "kirby", "FAILED", "1:0", "00:00:01", "jarvice_a\n6" + SEP + "x"]) + "\n"
        + SEP.join(["6", "kirby", "COMPLETED", "0:0", "00:00:02", "jarvice_b"]) + "\n"
    )
    records = parse_sacct(text, ["5", "6"])
    assert records["6"].state == "COMPLETED"
    assert records["5"].state == "FAILED"
