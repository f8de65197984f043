"""``dssr``: a small command line over :class:`~dssr_core.Downstream` for library users.

Configured like the server (``JARVICE_BAREMETAL_CONNECTOR``, ``JARVICE_BAREMETAL_EXECUTOR``
and the plugins' variables); ``--connector``/``--executor`` win.  A bad value
gives one line naming it and exit status 2; a cluster fault exit status 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence, TextIO

from .config import Settings
from .downstream import Downstream
from .errors import BadRequest, ClusterError, DssrError, NotFound
from .job import JobRef, JobSpec, JobState
from .plugins import available_connectors, available_executors
from .shell import command as shell_command
from .validate import MAX_INT64, parse_int, shown, validate_jobid, validate_name

_ENV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dssr", description="Submit and follow jobs through a jarvice-dssr connector."
    )
    parser.add_argument("--url", help="act through this dssr-server's /v1 API (token: --token or $DSSR_TOKEN)")
    parser.add_argument("--connector", help="connector plugin (default: $JARVICE_BAREMETAL_CONNECTOR or local)")
    parser.add_argument(
        "--executor",
        help="executor plugin (default: $JARVICE_BAREMETAL_EXECUTOR, "
        "else shell with the local connector and singularity with others)",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")

    sub.add_parser("plugins", help="list the installed connectors and executors")
    doctor = sub.add_parser("doctor", help="check the site's set-up, one OK/FAIL line per check (exit 0: all OK)")
    doctor.add_argument(
        "--submit", metavar="EMAIL", help="also run a tiny job end to end as this mapped user, timing each stage"
    )
    doctor.add_argument("--token", help="run the trial job with this bearer token (slurmrestd needs one)")
    doctor.add_argument("--timeout", type=_positive, default=300, help="seconds the trial job may take (default 300)")
    sub.add_parser("running", help="list running jobs (name, job id)")
    sub.add_parser("queued", help="list queued jobs (name, job id)")

    submit = sub.add_parser("submit", help="submit a native job: dssr submit --name N [--image I] -- command...")
    submit.add_argument("--name", required=True, type=_name)
    submit.add_argument("--number", type=_count, default=0)
    submit.add_argument("--image", help="container image (container executors)")
    submit.add_argument("--nodes", type=_positive, default=1)
    submit.add_argument("--cores", type=_positive, default=1, help="cores per node")
    submit.add_argument("--gpus", type=_count, default=0, help="GPUs per node")
    submit.add_argument("--memory", type=_count, default=0, help="memory per node, GB")
    submit.add_argument("--walltime", help="time limit, e.g. 01:00:00")
    submit.add_argument("--partition")
    submit.add_argument("--shared", action="store_true", help="do not ask for exclusive nodes")
    submit.add_argument("--hold", action="store_true", help="submit held (start it with dssr release)")
    submit.add_argument("--env", type=_env, action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--token", help="the user's bearer token, for connectors that run jobs as cluster users")
    submit.add_argument(
        "command", nargs=argparse.REMAINDER, help="after --: one shell command line, or a program and its arguments"
    )

    for action, text in (
        ("status", "show a job's state, nodes and elapsed time"),
        ("exitstatus", "show how a finished job ended, with its output"),
        ("terminate", "stop a job"),
        ("release", "let a held job start"),
        ("tail", "print the end of a job's output"),
        ("events", "print the scheduler's details of a job"),
    ):
        one = sub.add_parser(action, help=text)
        one.add_argument("jobid", type=_jobid)
        one.add_argument("--name", required=True, type=_name, help="the job's name")
        one.add_argument("--number", type=_count, default=0)
        if action == "terminate":
            one.add_argument("--force", action="store_true", help="kill at once")
        if action == "tail":
            one.add_argument("-n", "--lines", type=_positive, default=100)
        if action == "exitstatus":
            one.add_argument("--collect", action="store_true", help="then remove the job's output and folder")
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
    print(downstream.submit(spec).jobid, file=out)
    return 0


def _job_action(downstream: Downstream, args: argparse.Namespace, out: TextIO) -> int:
    ref = JobRef(args.name, args.number, args.jobid)
    if args.action == "status":
        status = downstream.runstatus(ref)
        if status is None:
            print(f"{ref.jobid} is neither queued nor running", file=out)
            return 1
        print(f"{status.state.value} {status.elapsed} {','.join(status.nodes) or '-'}", file=out)
    elif args.action == "exitstatus":
        result = downstream.exitstatus(ref, collect=args.collect)
        if result.state is JobState.UNKNOWN:
            print(f"dssr: job {ref.jobid} ({ref.name}) is unknown to this downstream", file=sys.stderr)
            return 1
        out.write(result.output)
        if result.output and not result.output.endswith("\n"):
            out.write("\n")
        print(f"rc={result.rc} elapsed={result.elapsed} {result.termination_line}", file=out)
    elif args.action == "terminate":
        downstream.terminate(ref, force=args.force)
    elif args.action == "release":
        downstream.release(ref)
    elif args.action == "tail":
        out.write(downstream.tail(ref, args.lines))
    elif args.action == "events":
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


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, settings: Settings | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.action == "plugins":
        return _plugins(out)
    if args.action == "doctor":
        from . import doctor  # only this command needs it

        return doctor.run(
            settings if settings is not None else Settings(),
            out,
            connector=args.connector,
            executor=args.executor,
            submit_as=args.submit,
            token=args.token,
            timeout=args.timeout,
        )
    try:
        if args.url:
            from .v1client import RemoteDownstream  # only --url needs it

            downstream: Downstream = RemoteDownstream.connect(args.url, settings, getattr(args, "token", None))
        else:
            downstream = Downstream.from_settings(settings, connector=args.connector, executor=args.executor)
    except DssrError as exc:
        print(f"dssr: {exc}", file=sys.stderr)
        return 2

    def handler() -> int:
        if args.action == "submit":
            return _submit(downstream, args, out)
        if args.action in ("running", "queued"):
            return _lists(downstream, args.action, out)
        return _job_action(downstream, args, out)

    try:
        return handler()
    except (ClusterError, NotFound) as exc:
        print(f"dssr: {exc}", file=sys.stderr)
        return 1
    except DssrError as exc:
        print(f"dssr: {exc}", file=sys.stderr)
        return 2
    finally:
        downstream.close()


if __name__ == "__main__":
    sys.exit(main())
