"""Elapsed-time normalisation and Slurm node-list expansion."""

from __future__ import annotations

import pytest

from dssr_core import BadRequest
from dssr_core.batch import elapsed_seconds, expand_nodelist, format_seconds, normalize_elapsed


@pytest.mark.parametrize(
    "slurm, legacy",
    [
        ("0:05", "00:00:05"),
        ("5:07", "00:05:07"),
        ("12:34", "00:12:34"),
        ("1:02:03", "01:02:03"),
        ("12:00:00", "12:00:00"),
        ("1-02:00:00", "26:00:00"),
        ("10-00:00:01", "240:00:01"),
        ("2-03", "51:00:00"),
        ("00:01:02.123", "00:01:02"),
    ],
)
def test_slurm_times_become_hh_mm_ss_with_unbounded_hours(slurm: str, legacy: str) -> None:
    assert normalize_elapsed(slurm) == legacy


@pytest.mark.parametrize("text", [None, "", "INVALID", "UNLIMITED", "Partition_Limit", "  "])
def test_non_times_become_zero(text: str | None) -> None:
    assert normalize_elapsed(text) == "00:00:00"


def test_elapsed_seconds_and_format_seconds_round_trip() -> None:
    assert elapsed_seconds("1-00:00:10") == 86410
    assert format_seconds(86410) == "24:00:10"
    assert format_seconds(-5) == "00:00:00"
    assert format_seconds(59.9) == "00:00:59"


@pytest.mark.parametrize(
    "nodelist, hosts",
    [
        ("node1", ["node1"]),
        ("node[1-2]", ["node1", "node2"]),
        ("node[1-3,7]", ["node1", "node2", "node3", "node7"]),
        ("a[01-03]b", ["a01b", "a02b", "a03b"]),
        ("node1,node3", ["node1", "node3"]),
        ("gpu[1-2],cpu5", ["gpu1", "gpu2", "cpu5"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
    ],
)
def test_node_lists_expand_to_host_names(nodelist: str, hosts: list[str]) -> None:
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("text", [None, "", "(null)", "None assigned", "n/a"])
def test_empty_node_lists_expand_to_nothing(text: str | None) -> None:
    assert expand_nodelist(text) == []


@pytest.mark.parametrize("text", ["node[1-2", "node1-2]", "node[a-b]", "node[1-2-3]"])
def test_malformed_node_lists_are_refused(text: str) -> None:
    with pytest.raises(BadRequest, match="Malformed node list"):
        expand_nodelist(text)
