"""The user-id mapping file: which cluster user (and SSH key) an upstream e-mail runs as, for any
connector that logs in to a cluster as its users.

Format (the first implementation's)::

    users_id_mapping:
      - user: "Kirby"
        jarvice_user: kirby
        mail: kirby@example.com
        mapped_user: kirby
        ssh_private_key_b64: <base64 of the private key>
        # or: ssh_private_key_file: keys/kirby   (relative to this file's folder)

The file is validated when loaded and re-read when its size or modification
time changes.  Keys are never shown in messages.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import yaml

from .._errors import BadRequest, ConfigError
from .._validate import CLUSTER_USER_PATTERN
from ._ssh import Login
from ._sshkeys import load_private_key


@dataclass(frozen=True)
class UserMapping:
    """The parsed file: e-mail (lower-case) -> login, and the problems found."""

    logins: dict[str, Login] = field(default_factory=dict, repr=False)
    problems: tuple[str, ...] = ()

    @property
    def users(self) -> list[str]:
        return sorted({login.user for login in self.logins.values()})


def parse_user_mapping(text: str, source: str) -> UserMapping:
    """Parse the YAML text; every bad entry becomes one problem line (the entry is skipped)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"The user-id mapping file {source} is not valid YAML{where}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("users_id_mapping"), list):
        raise ConfigError(f"The user-id mapping file {source} has no 'users_id_mapping' list.")
    logins: dict[str, Login] = {}
    problems: list[str] = []
    for index, entry in enumerate(data["users_id_mapping"], start=1):
        label = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            problems.append(f"{label} is not a mapping.")
            continue
        mail = entry.get("mail")
        if not isinstance(mail, str) or "@" not in mail:
            problems.append(f"{label} has no valid 'mail'.")
            continue
        label = f"{source}: {mail}"
        user = entry.get("mapped_user")
        if not isinstance(user, str) or not CLUSTER_USER_PATTERN.match(user):
            problems.append(f"{label}: 'mapped_user' {user!r} is not a valid cluster user name.")
            continue
        try:
            key_field, key_text = _key_text(entry, label, source)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        try:
            key = load_private_key(key_text, f"the {key_field} of {mail}")
        except ConfigError as exc:
            problems.append(f"{source}: {exc}")
            continue
        email = mail.strip().lower()
        if email in logins:
            problems.append(f"{label} appears twice; the first entry is used.")
            continue
        logins[email] = Login(user, key)
    return UserMapping(logins, tuple(problems))


def _key_text(entry: dict[str, object], label: str, source: str) -> tuple[str, str]:
    """(the field that gave it, the key text) of an entry: inline base64, or a file of its own
    (a path relative to the mapping file's folder), as a Kubernetes Secret mounts it."""
    inline, path = entry.get("ssh_private_key_b64"), entry.get("ssh_private_key_file")
    if inline is not None and path is not None:
        raise ConfigError(f"{label}: give 'ssh_private_key_b64' or 'ssh_private_key_file', not both.")
    if path is None:
        if not isinstance(inline, str) or not inline.strip():
            raise ConfigError(f"{label}: 'ssh_private_key_b64' (or 'ssh_private_key_file') is missing.")
        return "ssh_private_key_b64", inline
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{label}: 'ssh_private_key_file' is not a path.")
    full = os.path.join(os.path.dirname(os.path.abspath(source)), path)
    try:
        with open(full, encoding="utf-8") as handle:
            return "ssh_private_key_file", handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ConfigError(f"{label}: 'ssh_private_key_file' {full} cannot be read ({why}).") from None


class UserMappingFile:
    """The mapping file on disk, re-read when it changes (one ``stat`` per lookup)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._mapping = UserMapping()
        self._error: str | None = None

    def load(self) -> UserMapping:
        """The current mapping (re-read when the file changed); raises :class:`ConfigError` when unusable."""
        try:
            info = os.stat(self.path)
        except OSError as exc:
            raise ConfigError(
                f"The user-id mapping file {self.path} cannot be read ({exc.strerror}); "
                "set JARVICE_USERS_ID_MAPPING_FILE."
            ) from None
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    with open(self.path, encoding="utf-8") as handle:
                        self._mapping = parse_user_mapping(handle.read(), self.path)
                    self._error = None
                except ConfigError as exc:
                    self._error = str(exc)
                except OSError as exc:
                    self._error = f"The user-id mapping file {self.path} cannot be read ({exc.strerror})."
                self._stamp = stamp
            if self._error is not None:
                raise ConfigError(self._error)
            return self._mapping

    def problems(self) -> list[str]:
        """One line per problem of the file as it is now (for the start-up report)."""
        try:
            return list(self.load().problems)
        except ConfigError as exc:
            return [str(exc)]

    def login_for(self, email: str | None) -> Login:
        """The login an e-mail maps to; :class:`BadRequest` when it maps to none."""
        if not email:
            raise BadRequest("The bearer token has no email claim: the user cannot be mapped to a cluster user.")
        login = self.load().logins.get(email.strip().lower())
        if login is None:
            raise BadRequest(
                f"The user {email} is not in the user-id mapping file: ask the site administrator to add them."
            )
        return login
