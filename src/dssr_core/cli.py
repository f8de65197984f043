"""``dssr``: a small command line over :class:`~dssr_core.Downstream` for library users.

Configured like the server (``JARVICE_BAREMETAL_CONNECTOR``, ``JARVICE_BAREMETAL_EXECUTOR``
and the plugins' variables); ``--connector``/``--executor`` win.  Exit status as
a Unix tool's: 0 done, 1 the cluster or the job says no (unknown job, a name
taken, not ended yet, a cluster fault), 2 bad usage or a bad setting (one line
naming the value); every non-zero status comes with one line on stderr.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from typing import TYPE_CHECKING, Sequence, TextIO

from ._cliout import WRITE_ERRORS, drop_stdout
from ._config import Settings, choose_plugins
from ._downstream import Downstream
from ._errors import BadRequest, ClusterError, DssrError, NotFound
from ._job import ExitStatus, JobRef, JobSpec, JobState
from ._plugins import available_connectors, available_executors
from ._shell import command as shell_command
from ._upstream import _PARTITION, _WALLTIME
from ._validate import MAX_INT64, parse_int, shown, validate_jobid, validate_name

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

_ENV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)
#: the local connector's setting: work beside the process (dssr-server) holding its state folder
BESIDE_SERVER = "JARVICE_LOCAL_BESIDE_SERVER"
_SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?\Z")


def _positive(text: str) -> int:
    try:
        return parse_int(text, "", 1, MAX_INT64)
    except BadRequest:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer >= 1") from None


def _count(text: str) -> int:
    try:
        return parse_int(text, "", 0, MAX_INT64)
    except BadRequest:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer >= 0") from None


def _seconds(text: str) -> float:
    if not _SECONDS.match(text) or float(text) >= 1e9:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number of seconds >= 0")
    return float(text)


def _walltime(text: str) -> str:
    if not _WALLTIME.match(text):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a time limit (e.g. 01:00:00, 1-00:00:00 or UNLIMITED)")
    return text


def _partition(text: str) -> str:
    if not _PARTITION.match(text):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a partition name (letters, digits, '_.,-')")
    return text


def _env(text: str) -> tuple[str, str]:
    match = _ENV.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return match[1], match[2]


def _name(text: str) -> str:
    try:
        return validate_name(text)
    except BadRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _jobid(text: str) -> str:
    try:
        return validate_jobid(text)
    except BadRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EPILOG = """exit status: 0 done; 1 the cluster or the job says no (unknown job, a name already
taken, a job not ended yet, a cluster fault); 2 bad usage or a bad setting; 130 interrupted;
141 the reader of its output went away (as for any tool killed by SIGPIPE); 1 too when its
output cannot be written (a full disk).  Every non-zero status but 141 comes with one line on stderr."""


def _version() -> str:
    from . import __version__

    return f"dssr (jarvice-dssr) {__version__}"


class _Parser(argparse.ArgumentParser):
    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops a failed write silently and exits 0: a closed pipe is reported like any other output's
        if message:
            (file or sys.stderr).write(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dssr",
        description="Submit and follow jobs through a jarvice-dssr connector "
        "(configured like dssr-server by the JARVICE_* variables).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--url", help="act through this dssr-server's /v1 API (token: --token or $DSSR_TOKEN)")
    parser.add_argument("--connector", help="connector plugin (default: $JARVICE_BAREMETAL_CONNECTOR or local)")
    parser.add_argument(
        "--executor",
        help="executor plugin (default: $JARVICE_BAREMETAL_EXECUTOR, "
        "else shell with the local connector and singularity with others)",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    command("plugins", "list the installed connectors and executors")
    doctor = command("doctor", "check the site's set-up, one OK/FAIL line per check (exit 0: all OK)")
    doctor.add_argument(
        "--submit", metavar="EMAIL", help="also run a tiny job end to end as this mapped user, timing each stage"
    )
    doctor.add_argument("--token", help="run the trial job with this bearer token (slurmrestd needs one)")
    doctor.add_argument("--timeout", type=_positive, default=300, help="seconds the trial job may take (default 300)")
    command("running", "list the running jobs, one 'name<TAB>job id' line each")
    command("queued", "list the queued jobs (held ones included), one 'name<TAB>job id' line each")

    submit = command(
        "submit",
        "submit a native job and print its job id: dssr submit --name N [--image I] -- command... "
        "(exit 1 when a job of that name exists already)",
    )
    submit.add_argument("--name", required=True, type=_name, help="the job's name, unique among the jobs not collected")
    submit.add_argument("--number", type=_count, default=0, help="the job's number (default 0)")
    submit.add_argument("--image", help="container image (container executors)")
    submit.add_argument("--nodes", type=_positive, default=1)
    submit.add_argument("--cores", type=_positive, default=1, help="cores per node")
    submit.add_argument("--gpus", type=_count, default=0, help="GPUs per node")
    submit.add_argument("--memory", type=_count, default=0, help="memory per node, GB")
    submit.add_argument("--walltime", type=_walltime, help="time limit, e.g. 01:00:00")
    submit.add_argument("--partition", type=_partition)
    submit.add_argument("--shared", action="store_true", help="do not ask for exclusive nodes")
    submit.add_argument("--hold", action="store_true", help="submit held (start it with dssr release)")
    submit.add_argument("--env", type=_env, action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--token", help="the user's bearer token, for connectors that run jobs as cluster users")
    submit.add_argument(
        "command", nargs=argparse.REMAINDER, help="after --: one shell command line, or a program and its arguments"
    )

    for action, text in (
        ("status", "print a job's state, elapsed time and nodes ('running 00:00:05 node1,node2')"),
        ("exitstatus", "print how an ended job ended, with its output (exit 1 while it runs)"),
        ("wait", "wait until a job has ended, then print how, as exitstatus does (exit 1 past --timeout)"),
        ("terminate", "stop a queued or running job (exit 1 when it has ended already)"),
        ("release", "let a held job start"),
        ("tail", "print the end of a job's output"),
        ("events", "print the scheduler's details of a job"),
    ):
        one = command(action, text)
        one.add_argument("jobid", type=_jobid, help="the job id (what dssr submit printed)")
        one.add_argument("--name", required=True, type=_name, help="the job's name")
        one.add_argument("--number", type=_count, default=0, help="the job's number (default 0)")
        if action == "terminate":
            one.add_argument("--force", action="store_true", help="kill at once")
        if action == "tail":
            one.add_argument("-n", "--lines", type=_positive, default=100)
        if action in ("exitstatus", "wait"):
            one.add_argument("--collect", action="store_true", help="then remove the job's output and folder")
        if action == "wait":
            one.add_argument("--timeout", type=_seconds, default=None, help="give up after this many seconds")
    return parser


def _command_line(words: Sequence[str]) -> str:
    words = list(words)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise BadRequest("submit needs a command after --.")
    return words[0] if len(words) == 1 else shell_command(*words)


def _submit(downstream: Downstream, args: argparse.Namespace, out: TextIO) -> int:
    spec = JobSpec(
        name=args.name,
        number=args.number,
        nodes=args.nodes,
        cores=args.cores,
        gpus=args.gpus,
        memory_gb=args.memory,
        walltime=args.walltime,
        partition=args.partition,
        exclusive=not args.shared,
        held=args.hold,
        image=args.image,
        command=_command_line(args.command),
        environment=dict(args.env),
    )
    if args.token is not None and downstream.verifier is not None:
        spec = spec.replace(identity=downstream.verifier.verify_token(args.token))
    submission = downstream.submit(spec)
    if submission.existed:
        raise _No(
            f"a job named {shown(spec.name)} exists already: job {submission.jobid}; nothing was submitted "
            f"(collect it with: dssr exitstatus --collect --name {spec.name} {submission.jobid}, "
            "or choose another --name)"
        )
    print(submission.jobid, file=out)
    return 0


class _No(Exception):
    """The job or the cluster says no: exit status 1 with this message."""


def _unknown(ref: JobRef) -> _No:
    return _No(f"job {ref.jobid} ({ref.name}) is unknown to this downstream")


def _ended(downstream: Downstream, ref: JobRef) -> ExitStatus | None:
    """How the job ended when it has ended (None: it is still queued or running); _No when it is unknown."""
    if downstream.runstatus(ref) is not None:
        return None
    try:
        result = downstream.exitstatus(ref, collect=False)
    except BadRequest as exc:  # the id of another job
        raise _No(str(exc)) from None
    except ClusterError as exc:
        if exc.transient:  # it ended a moment ago, or its end is not recorded yet
            return None
        raise
    if result.state is JobState.UNKNOWN:
        raise _unknown(ref)
    return result


def _print_end(result: ExitStatus, out: TextIO) -> None:
    out.write(result.output)
    if result.output and not result.output.endswith("\n"):
        out.write("\n")
    print(f"rc={result.rc} elapsed={result.elapsed} {result.termination_line}", file=out)


def _job_action(downstream: Downstream, args: argparse.Namespace, out: TextIO) -> int:
    ref = JobRef(args.name, args.number, args.jobid)
    action = args.action
    if action in ("exitstatus", "wait"):
        try:
            if action == "exitstatus":
                result = downstream.exitstatus(ref, collect=args.collect)
            else:
                result = downstream.wait(ref, args.timeout, collect=args.collect)
        except BadRequest as exc:  # the id of another job
            raise _No(str(exc)) from None
        if result.state is JobState.UNKNOWN:
            raise _unknown(ref)
        _print_end(result, out)
        return 0
    if action == "status":
        status = downstream.runstatus(ref)
        if status is None:
            ended = _ended(downstream, ref)
            if ended is None:
                raise _No(f"job {ref.jobid} ({ref.name}): its state cannot be read now; ask again")
            print(f"{ended.state.value} {ended.elapsed} -", file=out)
        else:
            print(f"{status.state.value} {status.elapsed} {','.join(status.nodes) or '-'}", file=out)
        return 0
    ended = _ended(downstream, ref)  # every other action needs a job this downstream knows
    if action == "terminate":
        if ended is not None:
            raise _No(f"job {ref.jobid} ({ref.name}) has ended already ({ended.state.value})")
        downstream.terminate(ref, force=args.force)
    elif action == "release":
        if ended is not None:
            raise _No(f"job {ref.jobid} ({ref.name}) has ended ({ended.state.value}): nothing to release")
        downstream.release(ref)
    elif action == "tail":
        out.write(downstream.tail(ref, args.lines))
    elif action == "events":
        print(downstream.events(ref), file=out)
    return 0


def _plugins(out: TextIO) -> int:
    for kind, found in (("connectors", available_connectors()), ("executors", available_executors())):
        print(f"{kind}:", file=out)
        for name, target in found.items():
            print(f"  {name:<12} {target}", file=out)
    return 0


def _lists(downstream: Downstream, action: str, out: TextIO) -> int:
    jobs = downstream.running() if action == "running" else downstream.queued()
    for job in jobs:
        print(f"{job.ref.name}\t{job.ref.jobid}", file=out)
    return 0


def _run(argv: Sequence[str] | None, out: TextIO, settings: Settings | None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("--url", "--connector", "--executor"):
        given = getattr(args, flag[2:])
        if given is not None and not given.strip():  # typed, yet no value: the default would be taken silently
            return _fail(f"{flag} is empty: give a value, or leave the flag out.", 2)
    if args.action == "plugins":
        return _plugins(out)
    base = settings if settings is not None else Settings()
    if base.raw(BESIDE_SERVER) is None:  # the local connector's CLI works beside its running server
        base = base.updated(JARVICE_LOCAL_BESIDE_SERVER="true")
    if args.action == "doctor":
        from . import _doctor as doctor  # only this command needs it

        return doctor.run(
            base,
            out,
            connector=args.connector,
            executor=args.executor,
            submit_as=args.submit,
            token=args.token,
            timeout=args.timeout,
        )
    try:
        if args.url:
            from ._v1client import RemoteDownstream  # only --url needs it

            downstream: Downstream = RemoteDownstream.connect(args.url, base, getattr(args, "token", None))
        else:
            # the plugins as dssr-server chooses them; a bad name is reported under the flag that gave it
            downstream = Downstream.from_settings(choose_plugins(base, args.connector, args.executor, flags=True))
    except DssrError as exc:
        return _fail(str(exc), 2)

    def handler() -> int:
        if args.action == "submit":
            return _submit(downstream, args, out)
        if args.action in ("running", "queued"):
            return _lists(downstream, args.action, out)
        return _job_action(downstream, args, out)

    try:
        return handler()
    except (ClusterError, NotFound, _No) as exc:
        return _fail(str(exc), 1)
    except DssrError as exc:
        return _fail(str(exc), 2)
    finally:
        downstream.close()


def _fail(message: str, code: int) -> int:
    print(f"dssr: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, settings: Settings | None = None) -> int:
    """The ``dssr`` command; returns its exit status (see :data:`EPILOG`)."""
    out = out or sys.stdout
    try:
        try:
            code = _run(argv, out, settings)
        except SystemExit:  # argparse's --help, --version and usage errors: their output must reach its reader too
            sys.stdout.flush()
            raise
        out.flush()
    except BrokenPipeError:  # the reader went away (``dssr running | head -1``): no traceback, nor one at exit
        drop_stdout()
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        # ``dssr tail ... > /dev/full``, a full or failing disk: said, not a traceback nor a silent 0
        drop_stdout()
        return _fail(f"cannot write its output ({exc.strerror or exc}).", 1)
    return code


if __name__ == "__main__":
    sys.exit(main())
