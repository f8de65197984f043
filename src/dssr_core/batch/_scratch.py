"""A batch job's files on the cluster's shared scratch, for any scheduler.

The layout (the first implementation's, kept so that a site's folders stay where they are)::

    <scratch>/users/<user>/                 the user's scratch folder
    <scratch>/users/<user>/<name>.out       the job's output (stdout and stderr)
    <scratch>/users/<user>/<name>/          the job's folder:
        node.sh       the executor's node script (Launch.node_script)
        launch.sh     the per-node wrapper (dssr_core.nodelaunch)
        batch.sh      the script given to the scheduler
        .secrets.env  Launch.secrets as ``export`` lines, mode 0600
        rank0.log     rank 0's output, rank0.rc its exit code

``<name>`` is the scheduler's job name (e.g. ``jarvice_<upstream name>``).  Paths
are POSIX paths as the login and compute nodes see them.  Everything here only
*builds* paths and shell text (every value quoted with :func:`dssr_core.command`);
the connector runs it on the cluster, as the job's user.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Mapping

from .._shell import command, exports

#: a job's files, in its folder
NODE_SCRIPT = "node.sh"
LAUNCH_SCRIPT = "launch.sh"
BATCH_SCRIPT = "batch.sh"
SECRETS_FILE = ".secrets.env"
RANK0_LOG = "rank0.log"
RANK0_RC = "rank0.rc"


@dataclass(frozen=True)
class JobFiles:
    """Where one job's files are (see the module's layout)."""

    job_dir: str
    output: str
    user_scratch: str

    @property
    def node_script(self) -> str:
        return f"{self.job_dir}/{NODE_SCRIPT}"

    @property
    def launch_script(self) -> str:
        return f"{self.job_dir}/{LAUNCH_SCRIPT}"

    @property
    def batch_script(self) -> str:
        return f"{self.job_dir}/{BATCH_SCRIPT}"

    @property
    def secrets_file(self) -> str:
        return f"{self.job_dir}/{SECRETS_FILE}"


@dataclass(frozen=True)
class ScratchLayout:
    """The shared scratch root (``JARVICE_BAREMETAL_SCRATCH_DIR``) and where each user's jobs live in it.

    ``user`` must already be a validated cluster user name (:data:`dssr_core.CLUSTER_USER`) and ``name``
    a validated job name: they become path components.
    """

    root: str

    def __post_init__(self) -> None:
        if not posixpath.isabs(self.root):
            raise ValueError(f"the scratch root {self.root!r} is not an absolute path")
        object.__setattr__(self, "root", posixpath.normpath(self.root))

    def user_scratch(self, user: str) -> str:
        return posixpath.join(self.root, "users", user)

    def job_dir(self, user: str, name: str) -> str:
        return posixpath.join(self.user_scratch(user), name)

    def output_file(self, user: str, name: str) -> str:
        return posixpath.join(self.user_scratch(user), name + ".out")

    def files(self, user: str, name: str) -> JobFiles:
        return JobFiles(self.job_dir(user, name), self.output_file(user, name), self.user_scratch(user))

    def removal(self, user: str, name: str) -> str:
        """The command removing the job's folder and output (garbage collection), with any private folder
        a writer of it killed half-way left (:func:`write_job_files`); exits 0 when already gone."""
        leftovers = f"{command(self.user_scratch(user))}/{command('.' + name + '.write.')}*"
        return command("rm", "-rf", "--", self.job_dir(user, name), self.output_file(user, name)) + " " + leftovers


def write_job_files(files: JobFiles, secrets: Mapping[str, str], scripts: Mapping[str, str]) -> str:
    """Bash text, run as the job's user under ``set -e``, that makes the job's folder and writes its files.

    ``scripts`` maps a path in the job's folder (e.g. ``files.node_script``) to its text; the secrets go
    to ``files.secrets_file`` (mode 0600, the only place they are written).  The folder and the other
    files are group-readable (umask 007: the service user, in the user's group, reads output and cleans
    up).

    The folder appears whole or not at all, and that is safe when several servers write the same job
    at the same moment: every file is written into a folder private to the writing shell, beside the
    job's (``.<name>.write.$HOSTNAME.$$``), which is then renamed to the job's folder in one
    ``rename`` (``mv -T``).  If the job's folder already exists (another writer renamed first), the
    files are renamed into it one by one instead, each replacing its equal whole.  So a job's folder,
    once it exists, always holds every file whole, and a reader (or the job) never sees a
    half-written one.  The text is written by bash builtins (``printf`` of single-quoted words: the
    secrets never reach a process's arguments); two processes run, ``mkdir`` and ``mv`` (three when
    the folder already exists).  A shell killed half-way can leave its private folder behind, which
    :meth:`ScratchLayout.removal` removes with the job's.
    """
    job_dir = command(files.job_dir)
    parent, name = posixpath.split(files.job_dir)
    private = f'{command(parent)}/{command("." + name + ".write.")}"$HOSTNAME.$$"'
    names = [posixpath.basename(files.secrets_file)]
    for path in scripts:
        if posixpath.dirname(path) != files.job_dir:
            raise ValueError(f"{path!r} is not in the job's folder {files.job_dir!r}")
        names.append(posixpath.basename(path))
    written = " ".join(f"{private}/{command(name)}" for name in names)
    parts = [
        "umask 007\n",
        f"mkdir -p {private}\n",  # 0770 by the umask (setgid inherited in a group layout)
        "umask 077\n",
        _write_builtin(f"{private}/{command(names[0])}", exports(secrets) if secrets else "# no secrets"),
        "umask 007\n",
    ]
    for name, text in zip(names[1:], scripts.values(), strict=True):
        parts.append(_write_builtin(f"{private}/{command(name)}", text))
    parts.append(f"if ! mv -T {private} {job_dir} 2>/dev/null; then\n")
    parts.append(f"    mv -f {written} {job_dir}/\n")
    parts.append(f"    rmdir {private}\n")
    parts.append("fi\n")
    return "".join(parts)


def write_at_start(files: JobFiles, secret_names: list[str], scripts: Mapping[str, str]) -> str:
    """Bash lines for the start of a batch script that write the job's folder when the job starts.

    For schedulers reached without a shell as the user beforehand (e.g. slurmrestd): the secrets
    arrive in the job's environment under ``secret_names`` and are moved into the secrets file
    (never into a script's text), then unset.  ``scripts`` as for :func:`write_job_files`.
    """
    for name in secret_names:
        if not name.isidentifier():
            raise ValueError(f"not a shell variable name: {name!r}")
    secret_lines = "".join(f"    printf 'export %s=%q\\n' {name} \"${{{name}:-}}\"\n" for name in secret_names)
    return (
        f"mkdir -p {command(files.job_dir)}\nchmod 2770 {command(files.job_dir)}\n"
        f"(umask 077; {{\n{secret_lines}    :\n}} > {command(files.secrets_file)})\n"
        + "".join(f"unset {name}\n" for name in secret_names)
        + "".join(_heredoc(path, text, f"FILE{index}") for index, (path, text) in enumerate(scripts.items()))
    )


def _delimiter(text: str, tag: str) -> str:
    delimiter = f"DSSR_{tag}_EOF"
    while delimiter in text:
        delimiter += "_"
    return delimiter


def _heredoc(path: str, text: str, tag: str) -> str:
    """Shell lines writing ``text`` to ``path`` through a quoted here-document (no expansion)."""
    delimiter = _delimiter(text, tag)
    body = text if text.endswith("\n") else text + "\n"
    return f"cat > {command(path)} <<'{delimiter}'\n{body}{delimiter}\n"


def _write_builtin(target: str, text: str) -> str:
    """A bash line writing ``text`` (a newline added if it lacks its last) to ``target`` (a shell word,
    already quoted) with the ``printf`` builtin: no process, nothing expanded."""
    body = text if text.endswith("\n") else text + "\n"
    # the directive: a file's text is single-quoted so that nothing in it expands
    return f"# shellcheck disable=SC2016\nprintf '%s' {command(body)} > {target}\n"
