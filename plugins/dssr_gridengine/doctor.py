"""``dssr doctor`` for the Grid Engine connector: each check of a site's set-up, a verdict with its fix.

After the checks every batch connector makes (the SSH host key, the service user's login:
:meth:`dssr_core.batch.BatchConnector.diagnose`): ``qstat``, the service user's operator rights,
the cell's ``common`` folder and accounting file, the parallel environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from dssr_core import Check, ClusterError, command, failed, passed

if TYPE_CHECKING:
    from .connector import GridEngineConnector


def scheduler_checks(conn: "GridEngineConnector") -> Iterator[Check]:
    """qstat answers, the service user is an operator, accounting is readable, the parallel environment
    exists (run after the SSH checks every batch connector makes)."""
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


def _pe_ok(text: str) -> bool:
    fields = dict((line.split(None, 1) + [""])[:2] for line in text.splitlines() if line.strip())
    return fields.get("allocation_rule", "").strip() == "1" and fields.get("control_slaves", "").strip() == "TRUE"
