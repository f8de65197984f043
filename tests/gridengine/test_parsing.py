"""Reading Grid Engine's output (as 8.1.9 prints it, captured on the test cluster), and the id order across the wrap."""

from __future__ import annotations

import pytest

from dssr_core import BadRequest, ClusterError, JobState
from dssr_gridengine.connector import _walltime
from dssr_gridengine.parsing import held, job_state, parse_accounting, parse_qstat, wrap_order

QSTAT = """2026-12-02T01:10:50
<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>3</JB_job_number><JB_name>jarvice_pe</JB_name><JB_owner>kirby</JB_owner><state>r</state>
      <JAT_start_time>2026-12-02T01:10:46</JAT_start_time><queue_name>all.q@genode1</queue_name>
      <master>MASTER</master><slots>1</slots>
    </job_list>
    <job_list state="running">
      <JB_job_number>3</JB_job_number><JB_name>jarvice_pe</JB_name><JB_owner>kirby</JB_owner><state>r</state>
      <JAT_start_time>2026-12-02T01:10:46</JAT_start_time><queue_name>all.q@genode2</queue_name>
      <master>SLAVE</master><slots>1</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>1</JB_job_number><JB_name>jarvice_t1 &lt;x&gt;
second line</JB_name><JB_owner>kirby</JB_owner><state>hqw</state><queue_name></queue_name><slots>1</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>2</JB_job_number><JB_name>someone-else</JB_name><JB_owner>mario</JB_owner><state>qw</state>
    </job_list>
  </job_info>
</job_info>"""

RECORD = (
    "all.q:genode2:kirby:kirby:{name}:{id}:{account}:0:1796173827:1796173827:1796173830:{failed}:{rc}:0:0.008138:"
    "0.000000:4636.000000:0:0:0:0:219:0:0:8.000000:56:0:0:0:2:1:NONE:defaultdepartment:{pe}:1:0:0.008138:0.000000:"
    "0.000000:NONE:0.000000:{task}:0.000000:0:0"
)


def record(
    name: str = "jarvice_a",
    jobid: int = 7,
    account: str = "sge",
    failed: int = 0,
    rc: int = 0,
    pe: str = "NONE",
    task: str = "NONE",
    submitted: int = 1796173827,
) -> str:
    line = RECORD.format(name=name, id=jobid, account=account, failed=failed, rc=rc, pe=pe, task=task)
    return line.replace(":1796173827:1796173827:", f":{submitted}:1796173827:", 1)


def test_qstat_gives_one_job_per_id_with_every_host_master_first_and_its_elapsed_time() -> None:
    jobs = {job.jobid: job for job in parse_qstat(QSTAT)}
    assert set(jobs) == {"1", "3"}  # mario's job is not this downstream's
    assert jobs["3"].nodes == ("genode1", "genode2") and jobs["3"].elapsed == "00:00:04"
    assert jobs["1"].name == "jarvice_t1 <x>\nsecond line" and jobs["1"].state == "hqw" and held("hqw")


def test_qstat_output_that_is_not_its_xml_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError):
        parse_qstat("2026-12-02T01:10:50\nerror: commlib error")
    with pytest.raises(ClusterError):
        parse_qstat('2026-12-02T01:10:50\n<!DOCTYPE x [<!ENTITY a "b">]><job_info/>')


@pytest.mark.parametrize(
    ("letters", "state"),
    [
        ("qw", JobState.QUEUED),
        ("hqw", JobState.QUEUED),
        ("r", JobState.RUNNING),
        ("t", JobState.RUNNING),
        ("dr", JobState.RUNNING),
        ("Eqw", JobState.FAILED),
        ("", JobState.UNKNOWN),
    ],
)
def test_state_letters(letters: str, state: JobState) -> None:
    assert job_state(letters) is state


def test_accounting_reads_the_master_record_of_the_wanted_ids_whatever_colons_a_name_holds() -> None:
    text = "\n".join(
        [
            "# Version: 8.1.9",
            record("jarvice_a", 7, failed=0, rc=0, pe="dssr", task="NONE"),
            record("jarvice_a", 7, failed=0, rc=9, pe="dssr", task="1.genode2"),  # a qrsh -inherit task
            record("other:with:colons", 8, rc=3),
            record("jarvice_b", 9, account="dssr_cancelled", failed=100, rc=137),
            record("jarvice_c", 10, failed=100, rc=137),
        ]
    )
    found = parse_accounting(text, ["7", "8", "9", "10", "11"])
    assert set(found) == {"7", "9", "10"}
    assert (found["7"].state, found["7"].elapsed, found["7"].user) == (JobState.COMPLETED, "00:00:03", "kirby")
    assert found["9"].state is JobState.CANCELLED
    assert found["10"].state is JobState.FAILED


def test_accounting_takes_the_newest_record_of_a_reused_id() -> None:
    text = "\n".join([record("jarvice_new", 5, rc=0, submitted=1796173900), record("jarvice_old", 5, rc=1)])
    assert parse_accounting(text, ["5"])["5"].name == "jarvice_new"


def test_ids_order_by_creation_across_the_wrap() -> None:
    assert min(["12", "9", "10"], key=wrap_order(["12", "9", "10"])) == "9"
    ids = ["9999998", "1", "9999999", "2"]  # 1 and 2 were given after 9,999,999 (seen on 8.1.9)
    assert sorted(ids, key=wrap_order(ids)) == ["9999998", "9999999", "1", "2"]


@pytest.mark.parametrize(("text", "seconds"), [("01:00:00", "3600"), ("1-00:00:10", "86410"), ("30", "1800")])
def test_walltime_becomes_h_rt_seconds(text: str, seconds: str) -> None:
    assert _walltime(text) == seconds


def test_a_walltime_that_is_no_time_is_refused() -> None:
    with pytest.raises(BadRequest):
        _walltime("1h; rm -rf /")
