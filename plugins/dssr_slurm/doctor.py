"""``dssr doctor`` for the Slurm connector: every check of a site's set-up, each a verdict with a fix.

After the checks every batch connector makes (the SSH host key, the service
user's login: :meth:`dssr_core.batch.BatchConnector.diagnose`): ``squeue``/``sacct``/
``scontrol``, the backend's own checks (:meth:`SlurmBackend.diagnose`: over
SSH the mapping file, coordinators and each mapped user's key and scratch
folder; over slurmrestd the daemon, its API version and the service token),
and the executor's probes on the compute nodes.  A failure that makes the next checks
meaningless ends the list there: a login node that cannot be reached or shows
the wrong host key (nothing more is sent to it), or a service user that cannot
log in (then only the job users' own logins are checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from dssr_core import Check, ClusterError, Executor, NodeProbe, command, failed, passed
from dssr_core.batch import Login, script_command

if TYPE_CHECKING:
    from .connector import SlurmConnector

#: separators of the node probes' output (record, field)
_RS, _FS = "\x1e", "\x1f"
#: how long a node probe may wait for busy nodes (seconds)
PROBE_WAIT = 120


def scheduler_checks(conn: "SlurmConnector", executor: Executor | None) -> Iterator[Check]:
    """``squeue``/``sacct``/``scontrol``, the backend's own checks, then (given an executor) its probes
    on the compute nodes."""
    yield from _slurm_commands(conn)
    yield from conn.backend.diagnose()
    if executor is None:
        return
    login = conn.backend.probe_login()
    for probe in executor.node_probes():
        yield from _on_nodes(conn, probe, login)


def _slurm_commands(conn: "SlurmConnector") -> Iterator[Check]:
    checks = (
        (
            "squeue answers (slurmctld)",
            command("squeue", "-h", "-o", "%i", "-t", "all"),
            "slurmctld must run and the login node's Slurm client must reach it (slurm.conf, munge)",
        ),
        (
            "sacct answers (accounting, slurmdbd)",
            command("sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now"),
            "without accounting, finished jobs cannot be reported: start slurmdbd and set "
            "AccountingStorageType=accounting_storage/slurmdbd in slurm.conf",
        ),
        ("scontrol answers", command("scontrol", "ping"), "scontrol must reach slurmctld from the login node"),
    )
    for what, cmd, fix in checks:
        try:
            result = conn.shell.run(cmd, kind="doctor", timeout=60)
        except ClusterError as exc:
            yield failed(what, str(exc))
            continue
        text = (result.stderr or result.stdout).strip()
        if result.rc != 0 or (cmd.startswith("scontrol") and "UP" not in result.stdout):
            first = next((line.strip() for line in text.splitlines() if line.strip()), f"exit status {result.rc}")
            yield failed(what, f"{first[:300]} Fix: {fix}.")
        else:
            yield passed(what)


def _on_nodes(conn: "SlurmConnector", probe: NodeProbe, login: Login | None) -> Iterator[Check]:
    """Run ``probe`` once on every responding node with one ``srun`` (as a mapped user, who may run jobs)."""
    inner = (
        f"out=$(bash -c {command(probe.script)} 2>&1); rc=$?; "
        f'printf \'{_RS}%s{_FS}%s{_FS}%s\' "$SLURMD_NODENAME" "$rc" "$out"'
    )
    script = (
        "list=$(sinfo -h -N -r -t idle,mix,alloc,comp -o %N | sort -u)\n"
        '[ -n "$list" ] || { echo "no node responds (sinfo -N -r)" >&2; exit 3; }\n'
        'n=$(printf "%s\\n" "$list" | wc -l); nodes=$(printf "%s\\n" "$list" | paste -sd, -)\n'
        f'srun -N "$n" -w "$nodes" --ntasks-per-node=1 --time=2 --immediate={PROBE_WAIT} '
        f"--job-name=dssr-doctor-probe --quiet bash -c {command(inner)}\n"
    )
    what = f"{probe.what}: a probe runs on the nodes"
    remote, data = script_command(script)
    try:
        if login is not None:
            result = conn.pool.run(login, remote, stdin=data, kind="doctor", timeout=PROBE_WAIT + 60)
        else:
            result = conn.shell.run(remote, stdin=data, kind="doctor", timeout=PROBE_WAIT + 60)
    except ClusterError as exc:
        yield failed(what, str(exc))
        return
    records = [r.split(_FS, 2) for r in result.stdout.split(_RS)[1:]]
    if not records:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        yield failed(
            what,
            f"srun failed: {lines[-1].strip() if lines else f'exit status {result.rc}'}. Fix: the "
            f"user {login.user if login else conn.cfg.service_user} must be able to run jobs "
            "(an association, a partition up); busy nodes make it wait at most "
            f"{PROBE_WAIT} s",
        )
        return
    for fields in sorted(records):
        node, rc, output = (fields + ["", ""])[:3]
        yield probe.judge(node, int(rc) if rc.strip().lstrip("-").isdigit() else 1, output)
