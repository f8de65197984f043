"""``dssr doctor`` for the Grid Engine connector: each check of a site's set-up, a verdict with its fix.

In order: the SSH host key, the service user's key, ``qstat``, the service user's operator
rights, the cell's ``common`` folder and accounting file, the parallel environment, the user-id
mapping.  A failure that makes the next checks meaningless (no SSH) ends the list there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from dssr_core import Check, ClusterError, Executor, command, failed, passed

if TYPE_CHECKING:
    from .connector import GridEngineConnector


def diagnose(conn: "GridEngineConnector", executor: Executor) -> Iterator[Check]:
    cfg = conn.cfg
    what = f"SSH reaches {cfg.host}:{cfg.port} with the right host key"
    try:
        seen = conn.pool.check_host()
    except ClusterError as exc:
        yield failed(what, f"{exc} Fix: check JARVICE_GE_CLUSTER_ADDR/PORT and JARVICE_GE_SSH_KNOWN_HOSTS.")
        return
    yield passed(what, f"{seen} ({conn.pool.policy.describe()})")
    what = f"the service user {cfg.service_user!r} logs in with JARVICE_GE_SSH_PKEY"
    try:
        conn.shell.run(command("id", "-un"), kind="doctor")
    except ClusterError as exc:
        yield failed(what, f"{exc} Fix: add the key's public half to ~{cfg.service_user}/.ssh/authorized_keys.")
        return
    yield passed(what)
    yield from _commands(conn)


def _commands(conn: "GridEngineConnector") -> Iterator[Check]:
    cfg = conn.cfg
    user, pe = cfg.service_user, cfg.pe
    checks = (
        (
            "qstat answers (sge_qmaster)",
            command("qstat", "-u", user),
            lambda out: True,
            "the submit host's client must reach the qmaster: SGE_ROOT, SGE_CELL (and SGE_QMASTER_PORT) in the "
            "SSH session's environment, and this host a submit host (qconf -as)",
        ),
        (
            f"{user!r} is an operator (sees, holds, releases and deletes every user's jobs)",
            command("qconf", "-so"),
            lambda out: user in out.split(),
            f"qconf -ao {user}",
        ),
        (
            "the cell's common folder and accounting file are readable",
            f'test -r "$SGE_ROOT/$SGE_CELL/common/bootstrap" && test -r "{cfg.accounting_file}" && echo ok',
            lambda out: out.strip() == "ok",
            "accounting on (reporting_params accounting=true in qconf -mconf) and the file readable by "
            f"{user} (JARVICE_GE_ACCOUNTING_FILE when it is not $SGE_ROOT/$SGE_CELL/common/accounting)",
        ),
        (
            f"the parallel environment {pe!r} exists, one slot a host, tightly integrated",
            command("qconf", "-sp", pe),
            lambda out: _pe_ok(out),
            f"qconf -ap {pe} with allocation_rule 1, control_slaves TRUE, job_is_first_task FALSE, and add it to "
            "the queues' pe_list (or set JARVICE_GE_PE)",
        ),
    )
    for what, cmd, good, fix in checks:
        try:
            result = conn.shell.run(cmd, kind="doctor", timeout=60)
        except ClusterError as exc:
            yield failed(what, str(exc))
            continue
        if result.rc != 0 or not good(result.stdout):
            text = (result.stderr or result.stdout).strip().splitlines()
            yield failed(what, f"{(text[0] if text else f'exit status {result.rc}')[:200]} Fix: {fix}.")
        else:
            yield passed(what)
    problems = conn.mapping.problems()
    what = f"the user-id mapping file {conn.mapping.path} is usable"
    yield failed(what, " ".join(problems)) if problems else passed(what)


def _pe_ok(text: str) -> bool:
    fields = dict((line.split(None, 1) + [""])[:2] for line in text.splitlines() if line.strip())
    return fields.get("allocation_rule", "").strip() == "1" and fields.get("control_slaves", "").strip() == "TRUE"
