"""``dssr doctor``: every check a site gets wrong, one line each, and an optional real job end to end.

The checks come from the plugins (:meth:`Connector.diagnose
<dssr_core.Connector.diagnose>`, :meth:`Executor.node_probes
<dssr_core.Executor.node_probes>`) and from the core (settings, bearer-token
keys).  ``--submit`` runs a tiny upstream-template job as a mapped user
through :meth:`Downstream.submit` -- the path ``/submit`` takes after the
token check -- and times each stage.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, TextIO

from ._checks import Check, failed, passed
from ._config import CONNECTOR_VARIABLE, EXECUTOR_VARIABLE, DownstreamSettings, Settings, choose_plugins
from ._connector import Connector
from ._downstream import Downstream
from ._errors import ClusterError, DssrError, InUse, NotFound
from ._executor import Executor
from ._identity import TokenVerifier
from ._interactive import InteractiveSettings
from ._job import Identity, JobRef, JobState, JobStatus
from ._plugins import load_connector, load_executor
from ._upstream import parse_template

#: the line the trial job prints when it ran to its end
TRIAL_MARKER = "JARVICE_CMD_SUCCESS"


def trial_template() -> str:
    """A minimal upstream template: the same shape a JARVICE upstream sends, running no container."""
    return "\n".join(
        [
            "#!/bin/bash",
            "{DOWNSTREAM_PARAMETERS}",
            ": <<'JOBOBJ_KEYS'",
            "JOBOBJ_APPDEFVERSION=2",
            "JOBOBJ_INTERACTIVE=False",
            "JOBOBJ_ARCH=amd64",
            "JOBOBJ_NAE=dssr-doctor",
            "JARVICE_CPU_CORES=1",
            "JOBOBJ_WALLTIME=00:05:00",
            "JARVICE_CMD=echo dssr doctor",
            "JOBOBJ_KEYS",
            'echo "dssr doctor: $(id -un) on $(hostname)" && echo ' + TRIAL_MARKER,
            "",
        ]
    )


def run(
    settings: Settings,
    out: TextIO,
    *,
    connector: str | None = None,
    executor: str | None = None,
    submit_as: str | None = None,
    token: str | None = None,
    timeout: float = 300.0,
) -> int:
    """Print every check as it ends; 0 when all passed, else 1."""
    ok = True

    def show(check: Check) -> None:
        nonlocal ok
        ok = ok and check.ok
        print(check.line(), file=out, flush=True)

    built = _build(settings, connector, executor, show)
    if built is None:
        return 0 if ok else 1
    downstream = built
    try:
        for check in downstream.connector.local_checks():
            show(check)
        for check in downstream.connector.diagnose(downstream.executor):
            show(check)
        if downstream.verifier is not None:
            show(downstream.verifier.check())
        if submit_as is not None or token is not None:
            identity = _identity(downstream, submit_as, token, show)
            if identity is not None:
                for check in trial(downstream, identity, timeout=timeout):
                    show(check)
    finally:
        downstream.close()
    return 0 if ok else 1


def _build(
    settings: Settings, connector: str | None, executor: str | None, show: Callable[[Check], None]
) -> Downstream | None:
    """The connector and executor ``dssr-server`` would load with these settings (the flags of
    ``dssr`` written over their variables, and named by them), each fault its own line; None
    when the checks cannot go on (the lines said why)."""
    settings = choose_plugins(settings, connector, executor, flags=True)
    chosen = DownstreamSettings.from_settings(settings)
    what = "settings parse"
    conn: Connector | None = None
    held: InUse | None = None
    try:
        conn = load_connector(chosen.connector, settings, setting=CONNECTOR_VARIABLE)
    except InUse as exc:  # the settings are right: a running server holds what they name
        held = exc
    except DssrError as exc:
        show(failed(what, str(exc)))
    execu: Executor | None = None
    try:
        if chosen.executor:  # none: the connector that would name it is not installed (said above)
            execu = load_executor(chosen.executor, settings, setting=EXECUTOR_VARIABLE)
    except DssrError as exc:
        show(failed(what, str(exc)))
    verifier, interactive, ready = None, None, conn is not None and execu is not None
    try:
        if conn is not None and conn.requires_identity:
            try:
                verifier = TokenVerifier.from_settings(settings)
            except DssrError as exc:
                show(failed("bearer-token keys load", str(exc)))
        interactive = InteractiveSettings.from_settings(settings)
    except DssrError as exc:
        show(failed(what, str(exc)))
        ready = False
    if ready and conn is not None and execu is not None:
        show(passed(what, f"connector {conn.name}, executor {execu.name}"))
        return Downstream(conn, execu, verifier=verifier, interactive=interactive)
    if conn is not None:
        conn.close()
    if held is not None and execu is not None and interactive is not None:
        show(passed(what, f"connector {chosen.connector}, executor {execu.name}"))
        show(
            passed(
                f"the {chosen.connector} connector's state folder is held by a running server",
                f"{held} That server checked it when it started (its /ready says how it is now); to check "
                "the folder from here, stop that server first.",
            )
        )
    return None


def _identity(
    downstream: Downstream, email: str | None, token: str | None, show: Callable[[Check], None]
) -> Identity | None:
    if token is not None:
        if downstream.verifier is None:
            return Identity(email=email)
        try:
            return downstream.verifier.verify_token(token)
        except DssrError as exc:
            show(failed("the --token given is accepted", str(exc)))
            return None
    return Identity(email=email, claims={"email": email} if email else {})


def _wait(
    downstream: Downstream, ref: JobRef, done: Callable[[JobStatus | None], bool], deadline: float, poll: float
) -> JobStatus | None:
    """Poll the job's status until ``done`` says so; TimeoutError (saying its state) past ``deadline``."""
    while True:
        status = downstream.runstatus(ref)
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {status.detail or status.state.value if status else 'unknown'}")
        time.sleep(poll)


def trial(downstream: Downstream, identity: Identity, *, timeout: float = 300.0, poll: float = 0.5) -> Iterator[Check]:
    """Submit the trial job as ``identity`` and follow it to its end, one check per stage (with its time)."""
    who = identity.email or identity.username or "the token's user"
    name = f"dssr-doctor-{int(time.time() * 1000)}"
    start = time.monotonic()
    try:
        spec = parse_template(trial_template(), 1, name, 0).replace(identity=identity)
        submission = downstream.submit(spec)
    except DssrError as exc:
        yield failed(f"a trial job is submitted as {who}", str(exc), time.monotonic() - start)
        return
    ref = JobRef(name, 0, submission.jobid)
    yield passed(f"a trial job is submitted as {who}", f"job {ref.jobid} ({name})", time.monotonic() - start)

    deadline = time.monotonic() + timeout
    for what, done in (
        ("the trial job starts", lambda s: s is None or s.state is not JobState.QUEUED),
        ("the trial job runs to its end", lambda s: s is None),
    ):
        stage = time.monotonic()
        try:
            status = _wait(downstream, ref, done, deadline, poll)
        except DssrError as exc:
            yield failed(what, str(exc), time.monotonic() - stage)
            return
        except TimeoutError as exc:
            downstream.terminate(ref, force=True)
            yield failed(
                what,
                f"{exc} after {timeout:g} s; it was cancelled. Are the nodes busy or down (sinfo)?",
                time.monotonic() - stage,
            )
            return
        where = f"on {', '.join(status.nodes)}" if status is not None and status.nodes else ""
        yield passed(what, where, time.monotonic() - stage)

    stage = time.monotonic()
    while True:
        try:
            result = downstream.exitstatus(ref, collect=False)
            break
        except ClusterError as exc:
            if not exc.transient or time.monotonic() > deadline:
                yield failed("the trial job's exit status is read", str(exc), time.monotonic() - stage)
                return
            time.sleep(poll)
        except DssrError as exc:
            yield failed("the trial job's exit status is read", str(exc), time.monotonic() - stage)
            return
    took = time.monotonic() - stage
    if result.rc != 0 or TRIAL_MARKER not in result.output:
        tail = result.output.strip().splitlines()[-3:]
        yield failed(
            "the trial job's exit status is read",
            f"rc {result.rc} ({result.detail or result.state.value}); output: {' | '.join(tail) or 'none'}",
            took,
        )
        return
    line = next((x for x in result.output.splitlines() if x.startswith("dssr doctor:")), "")
    yield passed(
        "the trial job's exit status is read", f"rc 0, output came back ({line[len('dssr doctor: ') :]})", took
    )

    stage = time.monotonic()
    try:
        downstream.connector.cleanup(ref)
        downstream.tail(ref, 1)
    except NotFound:
        yield passed("the trial job's files are removed", seconds=time.monotonic() - stage)
    except DssrError as exc:
        yield failed("the trial job's files are removed", str(exc), time.monotonic() - stage)
    else:
        yield failed(
            "the trial job's files are removed",
            "its output is still there after garbage collection",
            time.monotonic() - stage,
        )
    yield passed("the trial job, end to end", seconds=time.monotonic() - start)
