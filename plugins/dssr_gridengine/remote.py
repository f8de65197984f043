"""Commands on the submit host as the service user, and folder listings confined to the allowed roots.

The same pieces as the Slurm connector's ``remote``/``listing`` modules (the
first to move into a shared batch layer); only the setting names differ.
"""

from __future__ import annotations

import posixpath
import re

from dssr_core import BadRequest, ClusterError, ConfigError, FileEntry, command, shown
from dssr_core import HostKeyPolicy, Login, Result, SSHPool, load_private_key

from .settings import GESettings


def build_pool(cfg: GESettings) -> SSHPool:
    policy = HostKeyPolicy(
        known_hosts=cfg.known_hosts,
        expected_fingerprint=cfg.host_key,
        record_file=cfg.host_key_record,
        record_setting="JARVICE_GE_SSH_HOST_KEY_RECORD",
    )
    return SSHPool(cfg.host, cfg.port, policy, command_timeout=cfg.command_timeout, keepalive=cfg.keepalive)


class ServiceShell:
    """Runs commands as the service user (an operator of the cell)."""

    def __init__(self, pool: SSHPool, cfg: GESettings) -> None:
        self.pool = pool
        self._login: Login | None = None
        self.key_problem: str | None = None
        if cfg.service_key_text is None:
            self.key_problem = (
                "JARVICE_GE_SSH_PKEY (or JARVICE_GE_SSH_PKEY_FILE) is not set: give the service user's key."
            )
        else:
            try:
                self._login = Login(cfg.service_user, load_private_key(cfg.service_key_text, cfg.service_key_setting))
            except ConfigError as exc:
                self.key_problem = str(exc)

    @property
    def login(self) -> Login:
        if self._login is None:
            raise ClusterError(self.key_problem or "No service key.", transient=False)
        return self._login

    def run(
        self, cmd: str, *, timeout: float | None = None, stdin: bytes | None = None, kind: str | None = None
    ) -> Result:
        return self.pool.run(self.login, cmd, timeout=timeout, stdin=stdin, kind=kind)


class FolderListing:
    """``find`` one level deep as the service user, inside ``roots`` only (links out are refused too)."""

    def __init__(self, shell: ServiceShell, roots: tuple[str, ...]) -> None:
        self.shell, self.roots = shell, roots
        self._real: tuple[str, ...] | None = None

    def list(self, path: str) -> list[FileEntry]:
        wanted = _logical_path(path)
        if wanted == "/":
            return [FileEntry(path=root + "/", is_dir=True) for root in self.roots]
        if not _inside(wanted, self.roots):
            raise BadRequest(f"The folder {shown(path)} is outside the folders this downstream may list.")
        script = (
            f"real=$(realpath -e -- {command(wanted)}) || exit 3\n"
            'printf "%s\\n" "$real"\n[ -d "$real" ] || exit 4\n'
            f"find {command(wanted + '/')} -mindepth 1 -maxdepth 1 -printf '%y\\037%T@\\037%s\\037%f\\0'\n"
        )
        result = self.shell.run("bash -s", stdin=script.encode(), kind="pvcls")
        if result.rc in (3, 4):
            raise BadRequest(f"The folder {shown(path)} does not exist or is not a folder.")
        real, _, listing = result.stdout.partition("\n")
        if not _inside(real, self._real_roots()):
            raise BadRequest(f"The folder {shown(path)} is outside the folders this downstream may list.")
        if result.rc != 0 and not listing:
            raise ClusterError(f"Listing {shown(path)} failed: {result.stderr.strip()[:300]}")
        entries = []
        for item in listing.split("\0"):
            fields = item.split("\x1f", 3)
            if len(fields) == 4:
                kind, mtime, size, base = fields
                full = posixpath.join(wanted, base) + ("/" if kind == "d" else "")
                entries.append(
                    FileEntry(path=full, is_dir=kind == "d", mtime=int(float(mtime or 0)), size=int(size or 0))
                )
        return sorted(entries, key=lambda e: e.path)

    def _real_roots(self) -> tuple[str, ...]:
        if self._real is None:
            result = self.shell.run(
                "bash -s", stdin="".join(f"realpath -m -- {command(r)}\n" for r in self.roots).encode()
            )
            if result.rc != 0:
                raise ClusterError(f"Resolving the listable folders failed: {result.stderr.strip()[:300]}")
            self._real = tuple(line for line in result.stdout.splitlines() if line)
        return self._real


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _logical_path(path: str) -> str:
    """The folder asked for, normalised (``/data`` prefix removed); ``..`` may not climb out."""
    if not isinstance(path, str) or "\0" in path or "\n" in path:
        raise BadRequest("The folder path is not valid.")
    text = path.strip() or "/"
    if text == "/data" or text.startswith("/data/"):
        text = text[len("/data") :] or "/"
    if not text.startswith("/"):
        text = "/" + text
    if re.search(r"(^|/)\.\.(/|$)", text):
        raise BadRequest(f"The folder {shown(path)} climbs out with '..'.")
    return posixpath.normpath(text)
