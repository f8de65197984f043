"""The project's exceptions: one base, a few kinds, each mapped to an HTTP status.

Every error a client may see carries one sentence meant for a portal or site
administrator.  The mapping to HTTP status lives here and only here
(:attr:`DssrError.http_status`), so the server never guesses.
"""

from __future__ import annotations

#: the longest message an error carries: it is sent to clients and logged, and
#: may quote outside values (each is cut shorter where it is quoted, see validate.shown)
MAX_MESSAGE = 2000


class DssrError(Exception):
    """Base of every error raised on purpose by dssr_core and its plugins."""

    http_status: int = 500

    def __init__(self, message: str) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"... ({len(message)} characters)"
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(DssrError):
    """The request cannot be honoured as sent (bad input, unmapped user, bad token)."""

    http_status = 400


class NotFound(DssrError):
    """The thing asked for does not exist (yet): e.g. a job output not written yet."""

    http_status = 404


class Unauthorized(DssrError):
    """The caller did not prove who it is (no token, or a token refused)."""

    http_status = 401


class Forbidden(DssrError):
    """The caller is known but may not do this (e.g. a user no cluster user is mapped to)."""

    http_status = 403


class Conflict(DssrError):
    """The request clashes with what exists: e.g. a job of that name submitted with another spec
    (``fields`` names what differs)."""

    http_status = 409

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class Unprocessable(BadRequest):
    """A well-formed request whose content is invalid; ``field`` names the value at fault."""

    http_status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotSupported(DssrError):
    """The connector does not implement this optional operation."""

    http_status = 501


class Busy(DssrError):
    """The server is at a bound it keeps (e.g. output followers): ask again later."""

    http_status = 503


class ClusterError(DssrError):
    """The cluster (or its scheduler) did not answer, or answered with an error.

    ``transient`` is true when asking again later may succeed (connection lost,
    time-out, accounting record not final yet).
    """

    http_status = 500

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class PluginError(DssrError):
    """A connector or executor cannot be found, imported or started."""

    http_status = 500


class ConfigError(DssrError):
    """A setting has a bad value.  The message names the variable and what is allowed."""

    http_status = 500


class InUse(ConfigError):
    """What a setting names is held by another process (a local connector's state folder held by
    a running server): the setting may be right.  The message names the variable and the holder."""
