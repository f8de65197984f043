"""The connector's own logic, with a stand-in backend (named as such) in place of Slurm."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterable, Iterator

import pytest

from dssr_core import (
    BadRequest,
    ClusterError,
    Identity,
    JobRef,
    JobSpec,
    JobState,
    Settings,
    Submission,
)
from dssr_core.batch import JobPlan, QueuedJob, QueueIndex, script_command
from dssr_core.batch._sharing import Batcher, SharedSnapshot
from dssr_core.batch._ssh import Result
from dssr_slurm.backend import AcctRecord, SlurmBackend
from dssr_slurm.connector import SlurmConnector
from tests.core.test_usermap import entry, openssh_key, write


class StandInBackend(SlurmBackend):
    """Stand-in for Slurm: canned squeue and sacct answers, records what was asked."""

    def __init__(self) -> None:
        self.jobs: list[QueuedJob] = []
        self.records: dict[str, AcctRecord] = {}
        self.down = False
        self.cancels: list[tuple[str, str | None]] = []
        self.acct_calls: list[list[str]] = []

    def queue(self) -> list[QueuedJob]:
        if self.down:
            raise ClusterError("squeue: slurm_load_jobs error: Unable to contact slurm controller")
        return list(self.jobs)

    def accounting(self, jobids: Iterable[str]) -> dict[str, AcctRecord]:
        ids = list(jobids)
        self.acct_calls.append(ids)
        return {j: self.records[j] for j in ids if j in self.records}

    def user_for(self, identity: Identity | None) -> str:
        raise AssertionError("not used")

    def submit(self, plan: JobPlan) -> Submission:
        raise AssertionError("not used")

    def cancel(self, jobid: str, signal: str | None = None) -> None:
        self.cancels.append((jobid, signal))

    def release(self, jobid: str) -> None:
        pass

    def show(self, jobid: str) -> str:
        return f"JobId={jobid}"

    def ping(self) -> None:
        pass


class StandInShell:
    """Stand-in for the service user's SSH shell: every file is missing."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
        stdin: bytes | None = None,
        kind: str | None = None,
    ) -> Result:
        self.commands.append(command)
        return Result(1, "", "tail: cannot open 'x' for reading: No such file or directory")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(tmp_path: Path, **extra: str) -> Settings:
    mapping = write(tmp_path / "m.yaml", [entry("kirby@example.com", "kirby", openssh_key("ed25519"))])
    env = {
        "JARVICE_SLURM_CLUSTER_ADDR": "127.0.0.1",
        "JARVICE_SLURM_CLUSTER_PORT": str(closed_port()),
        "JARVICE_SLURM_SSH_PKEY": openssh_key("ed25519"),
        "JARVICE_USERS_ID_MAPPING_FILE": str(mapping),
        "JARVICE_SLURM_KILL_GRACE": "0",
    }
    env.update(extra)
    return Settings(env)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[SlurmConnector, StandInBackend, StandInShell]]:
    conn = SlurmConnector(settings(tmp_path))
    backend, shell = StandInBackend(), StandInShell()
    conn.backend = backend
    conn.shell = shell  # type: ignore[assignment]  # the stand-in shell records the commands instead of running them
    conn._snapshot = SharedSnapshot(lambda: QueueIndex.of(conn.queue(), conn.job_state), 0.0)
    conn._acct = Batcher(conn.accounting)
    yield conn, backend, shell
    conn.close()


def job(jobid: str, name: str, state: str, user: str = "kirby") -> QueuedJob:
    return QueuedJob(jobid=jobid, name=name, user=user, state=state, nodes=("node1",))


def test_start_up_reports_each_bad_setting_in_one_line_and_does_not_raise(tmp_path: Path) -> None:
    conn = SlurmConnector(settings(tmp_path, JARVICE_SLURM_SSH_PKEY="bm90IGEga2V5"))
    problems = [check.why for check in [*conn.local_checks(), *conn.diagnose(None)] if not check.ok]
    assert any("JARVICE_SLURM_SSH_PKEY" in p for p in problems)
    assert any("does not answer" in p or "Cannot reach" in p for p in problems)
    assert all("\n" not in p for p in problems)
    with pytest.raises(ClusterError):
        conn.ping()
    conn.close()


def test_a_missing_cluster_address_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="JARVICE_SLURM_CLUSTER_ADDR"):
        SlurmConnector(Settings({}))


def test_scratch_dir_alias_is_accepted(tmp_path: Path) -> None:
    conn = SlurmConnector(settings(tmp_path, JARVICE_JOB_SCRATCH_DIR="/scratch2"))
    assert conn.cfg.scratch == "/scratch2"
    conn.close()


def test_failed_poll_is_an_error_not_an_empty_list(parts: tuple[SlurmConnector, StandInBackend, StandInShell]) -> None:
    conn, backend, _ = parts
    backend.down = True
    with pytest.raises(ClusterError):
        conn.snapshot()


def test_running_and_queued_lists_come_from_one_snapshot(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
) -> None:
    conn, backend, _ = parts
    backend.jobs = [
        job("1", "jarvice_a", "RUNNING"),
        job("2", "jarvice_b", "PENDING"),
        job("3", "jarvice_c", "COMPLETED"),
    ]
    states = {s.ref.name: s.state for s in conn.snapshot()}
    assert states == {"a": JobState.RUNNING, "b": JobState.QUEUED}


def test_a_duplicate_being_cancelled_is_never_listed_nor_given_a_status(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
) -> None:
    """Two jobs of one name (a replica's held duplicate, before submit_once cancels it): the lowest id is the job."""
    conn, backend, _ = parts
    backend.jobs = [
        job("12", "jarvice_a", "PENDING"),
        job("11", "jarvice_a", "RUNNING"),
        job("13", "jarvice_a", "PENDING", user="mario"),
    ]
    assert sorted((s.ref.jobid, s.owner) for s in conn.snapshot()) == [("11", "kirby"), ("13", "mario")]
    assert conn.status(JobRef("a", 1, "11")) is not None
    assert conn.status(JobRef("a", 1, "12")) is None
    assert conn.status(JobRef("b", 1, "11")) is None  # the id of another job's name


def test_job_absent_from_squeue_takes_its_end_from_accounting(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
) -> None:
    conn, backend, _ = parts
    backend.records["5"] = AcctRecord("5", "jarvice_a", "kirby", "FAILED", "00:00:03", "1:0")
    end = conn.exit_status(JobRef("a", 1, "5"))
    assert (end.state, end.rc, end.detail) == (JobState.FAILED, 1, "FAILED")


def test_job_still_running_in_accounting_asks_the_upstream_to_retry(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
) -> None:
    conn, backend, _ = parts
    backend.records["5"] = AcctRecord("5", "jarvice_a", "kirby", "RUNNING")
    with pytest.raises(ClusterError) as caught:
        conn.exit_status(JobRef("a", 1, "5"))
    assert caught.value.transient


def test_job_known_to_neither_is_rc_minus_9(parts: tuple[SlurmConnector, StandInBackend, StandInShell]) -> None:
    conn, _, _ = parts
    end = conn.exit_status(JobRef("a", 1, "77"))
    assert end.rc == -9


def test_job_id_of_another_job_is_refused(parts: tuple[SlurmConnector, StandInBackend, StandInShell]) -> None:
    conn, backend, _ = parts
    backend.jobs = [job("9", "someone_elses_job", "RUNNING", user="mario")]
    with pytest.raises(BadRequest):
        conn.terminate(JobRef("a", 1, "9"))
    assert backend.cancels == []


def test_job_ids_must_be_digits(parts: tuple[SlurmConnector, StandInBackend, StandInShell]) -> None:
    conn, backend, _ = parts
    with pytest.raises(BadRequest):
        conn.terminate(JobRef("a", 1, "12a"))
    assert backend.cancels == []


def test_terminate_cancels_and_abort_kills_at_once(parts: tuple[SlurmConnector, StandInBackend, StandInShell]) -> None:
    conn, backend, _ = parts
    backend.jobs = [job("4", "jarvice_a", "RUNNING")]
    conn.terminate(JobRef("a", 1, "4"))
    assert backend.cancels == [("4", None)]
    conn.terminate(JobRef("a", 1, "4"), force=True)
    assert backend.cancels[1:] == [("4", None), ("4", "KILL")]


def test_reserved_scheduler_flags_are_refused(parts: tuple[SlurmConnector, StandInBackend, StandInShell]) -> None:
    conn, _, shell = parts
    spec = JobSpec(
        name="x",
        command="true",
        scheduler_flags={"output": "/etc/passwd"},
        identity=Identity(email="kirby@example.com"),
    )
    with pytest.raises(BadRequest, match="--output"):
        conn.submit(spec, None)  # type: ignore[arg-type]  # no executor: the refusal comes first
    assert shell.commands == []


@pytest.mark.parametrize("path", ["/etc", "..", "/var/tmp/../../etc", "/jxe_scratch/../etc", "/jxe_scratch2"])
def test_pvcls_outside_the_roots_is_refused_before_touching_the_cluster(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell], path: str
) -> None:
    conn, _, shell = parts
    with pytest.raises(BadRequest):
        conn.list_files(path)
    assert shell.commands == []


class StandInExecutor:
    """Stand-in executor: a fixed node script and one secret."""

    name = "stand-in"

    def launch(self, spec: JobSpec, ctx: object) -> object:
        from dssr_core import Launch

        return Launch(node_script="echo node\n", secrets={"REGISTRY_PASSWORD": "s3cr3t-pw"})


def submitted_options(conn: SlurmConnector, spec: JobSpec, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(submission script, fscript) of ``spec``, with the cluster never reached (a stand-in for the SSH
    pool's ``run`` answers as the submit-once script does)."""
    from dssr_slurm.cli import CliBackend

    seen: list[str] = []

    def stand_in_run(login: object, command: str, *, stdin: bytes | None = None, **kw: object) -> Result:
        assert stdin is not None
        text = stdin.decode()
        assert text.startswith("{\n") and text.endswith("\n}\n") and script_command(text[2:-2]) == (command, stdin)
        seen.append(text[2:-2])
        return Result(0, "DSSR_ONCE=101 0\n", "")

    monkeypatch.setattr(conn.pool, "run", stand_in_run)
    conn.backend = CliBackend(conn.shell, conn.pool, conn.mapping, conn.cfg)
    submission = conn.submit(spec, StandInExecutor())  # type: ignore[arg-type]  # the stand-in executor has what submit uses
    assert submission.jobid == "101"
    return seen[0], submission.script


def sbatch_line(script: str) -> str:
    return next(line for line in script.splitlines() if line.startswith("jobid=$(sbatch"))


@pytest.mark.parametrize(
    "kw,exclusive",
    [
        ({}, True),
        ({"exclusive": False}, False),
        ({"exclusive": False, "gpus": 1}, True),
        ({"exclusive": False, "interactive": True}, True),
    ],
)
def test_exclusive_unless_lifted_never_for_gpu_or_interactive_jobs(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
    kw: dict[str, object],
    exclusive: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn, _, _ = parts
    spec = JobSpec(name="x", command="true", identity=Identity(email="kirby@example.com"), **kw)  # type: ignore[arg-type]  # each case passes each field the type JobSpec wants
    script, _ = submitted_options(conn, spec, monkeypatch)
    assert ("--exclusive" in sbatch_line(script)) is exclusive


def test_sbatch_options_carry_name_nodes_tasks_and_resources(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, _, _ = parts
    spec = JobSpec(
        name="job-7",
        command="true",
        nodes=2,
        cores=4,
        memory_gb=8,
        gpus=1,
        walltime="01:00:00",
        partition="debug",
        licenses="fluent:1",
        scheduler_flags={"qos": "high"},
        identity=Identity(email="Kirby@Example.com"),
    )
    line = sbatch_line(submitted_options(conn, spec, monkeypatch)[0])
    for option in (
        "--job-name=jarvice_job-7",
        "--nodes=2",
        "--ntasks=8",
        "--mem=8G",
        "--gpus-per-node=1",
        "--time=01:00:00",
        "--partition=debug",
        "--licenses=fluent:1",
        "--qos=high",
        "/users/kirby/jarvice_job-7.out",
        "--hold",
    ):
        assert option in line


def test_fscript_and_batch_script_hold_no_secret(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, _, _ = parts
    script, fscript = submitted_options(
        conn, JobSpec(name="x", command="true", identity=Identity(email="kirby@example.com")), monkeypatch
    )
    assert "s3cr3t-pw" not in fscript
    assert "s3cr3t-pw" in script  # only on the submission's stdin, into .secrets.env


def test_an_unmapped_user_submits_nothing(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, _, _ = parts
    with pytest.raises(BadRequest, match="luigi@example.com"):
        submitted_options(
            conn, JobSpec(name="x", command="true", identity=Identity(email="luigi@example.com")), monkeypatch
        )


def test_an_incomplete_accounting_record_asks_again_and_reads_nothing(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
) -> None:
    """slurmdbd has the job's end under its placeholder name: not this job's end, nor another's, yet."""
    conn, backend, shell = parts
    backend.records["6"] = AcctRecord("6", "allocation", "kirby", "FAILED", "00:00:01", "3:0")
    for read in (
        lambda: conn.exit_status(JobRef("a", 1, "6")),
        lambda: conn.tail(JobRef("a", 1, "6"), 10),
        lambda: conn.cleanup(JobRef("a", 1, "6")),
    ):
        with pytest.raises(ClusterError, match="not complete yet") as caught:
            read()
        assert caught.value.transient
    assert shell.commands == []
    backend.records["6"] = AcctRecord("6", "jarvice_a", "kirby", "FAILED", "00:00:01", "3:0")  # its name arrived
    assert conn.exit_status(JobRef("a", 1, "6")).rc == 1


def test_accounting_record_of_another_job_is_unknown(
    parts: tuple[SlurmConnector, StandInBackend, StandInShell],
) -> None:
    conn, backend, shell = parts
    backend.records["6"] = AcctRecord("6", "mario_private_job", "mario", "COMPLETED")
    assert conn.exit_status(JobRef("a", 1, "6")).rc == -9
    assert shell.commands == []


def test_the_service_key_may_come_from_a_mounted_file(tmp_path: Path) -> None:
    key_file = tmp_path / "ssh-privatekey"
    key_file.write_text(openssh_key("ed25519"))
    env = settings(tmp_path, JARVICE_SLURM_SSH_PKEY_FILE=str(key_file)).as_dict()
    del env["JARVICE_SLURM_SSH_PKEY"]
    conn = SlurmConnector(Settings(env))
    assert conn.shell.key_problem is None
    assert conn.shell.login.user == "jarvice"
    conn.close()


def test_a_service_key_file_that_is_not_a_key_is_named_by_its_variable(tmp_path: Path) -> None:
    key_file = tmp_path / "ssh-privatekey"
    key_file.write_text("bm90IGEga2V5")
    env = settings(tmp_path, JARVICE_SLURM_SSH_PKEY_FILE=str(key_file)).as_dict()
    del env["JARVICE_SLURM_SSH_PKEY"]
    conn = SlurmConnector(Settings(env))
    assert any(check.why.startswith("JARVICE_SLURM_SSH_PKEY_FILE ") for check in conn.local_checks() if not check.ok)
    conn.close()


def test_an_unreadable_service_key_file_is_a_blocking_local_fault_naming_the_variable(tmp_path: Path) -> None:
    """Not an exception of the connector's start: a local check of its own, so that the doctor reports
    it beside the other local faults (issue 21); a blocking one, so that dssr-server stops on it."""
    env = settings(tmp_path, JARVICE_SLURM_SSH_PKEY_FILE=str(tmp_path / "missing")).as_dict()
    del env["JARVICE_SLURM_SSH_PKEY"]
    conn = SlurmConnector(Settings(env))
    try:
        failing = [check for check in conn.local_checks() if not check.ok]
        assert [check.why for check in failing] == [
            f"JARVICE_SLURM_SSH_PKEY_FILE='{tmp_path}/missing' cannot be read (No such file or directory)."
        ]
        assert failing[0].blocks
        assert failing[0].why not in [check.why for check in conn.diagnose(None) if not check.ok]  # reported once
        with pytest.raises(ClusterError, match="JARVICE_SLURM_SSH_PKEY_FILE=.*missing.* cannot be read"):
            conn.shell.run("true")
    finally:
        conn.close()
