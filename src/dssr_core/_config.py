"""Settings read from ``JARVICE_*`` environment variables.

:class:`Settings` wraps a mapping (``os.environ`` by default) with typed
getters.  Each getter raises :class:`~dssr_core.errors.ConfigError` with one
line naming the variable, its bad value (never for secrets) and what is
allowed.  Plugins read their own variables through the same getters.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

from ._errors import ConfigError, PluginError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Settings:
    """Typed, validated access to configuration variables."""

    def __init__(
        self, env: Mapping[str, str] | None = None, *, labels: Mapping[str, str] | None = None, **overrides: str
    ) -> None:
        self._env: dict[str, str] = dict(os.environ if env is None else env)
        self._env.update(overrides)
        #: variable -> what the user typed to set it (a command-line flag), for messages
        self._labels: dict[str, str] = dict(labels or {})

    def label(self, name: str) -> str:
        """How messages name ``name``: the flag that set it (``--port``), else the variable itself."""
        return self._labels.get(name, name)

    def updated(self, labels: Mapping[str, str] | None = None, **overrides: str) -> "Settings":
        """A copy with ``overrides`` written over their variables (each shown as its ``labels`` entry)."""
        return Settings(self._env, labels={**self._labels, **(labels or {})}, **overrides)

    def raw(self, name: str) -> str | None:
        """The value as set (None when unset or empty)."""
        value = self._env.get(name)
        return value if value not in (None, "") else None

    def first(self, *names: str) -> tuple[str, str | None]:
        """(name, value) of the first of ``names`` that is set; the first name when none is."""
        for name in names:
            if self.raw(name) is not None:
                return name, self.raw(name)
        return names[0], None

    def secret_text(self, name: str) -> tuple[str, str | None]:
        """A secret given as text in ``name`` or as a file named by ``name_FILE`` (a mounted secret).

        Returns (the variable that gave it, its text), or (``name``, None) when neither is set.
        Raises :class:`ConfigError` when both are set, or the file cannot be read or is empty
        (naming the variable and the path, never the content).
        """
        file_name = name + "_FILE"
        text, path = self.raw(name), self.raw(file_name)
        if text is not None and path is not None:
            raise ConfigError(f"{self.label(name)} and {self.label(file_name)} are both set: give only one.")
        if path is None:
            return name, text
        try:
            with open(path, encoding="utf-8") as handle:
                content = handle.read()
        except OSError as exc:
            raise ConfigError(f"{self.label(file_name)}={path!r} cannot be read ({exc.strerror or exc}).") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{self.label(file_name)}={path!r} is not UTF-8 text.") from None
        if not content.strip():
            raise ConfigError(f"{self.label(file_name)}={path!r} is empty.")
        return file_name, content

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.label(name)} is not set: it is required.")
            return default
        return value

    def require(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(
        self,
        name: str,
        default: int,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigError(f"{self.label(name)}={value!r} is not an integer{_range(minimum, maximum)}.") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ConfigError(
                f"{self.label(name)}={value!r} is out of range: use an integer{_range(minimum, maximum)}."
            )
        return number

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise ConfigError(f"{self.label(name)}={value!r} is not a number.") from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"{self.label(name)}={value!r} is out of range: use a number >= {minimum}.")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{self.label(name)}={value!r} is not a boolean: use true or false.")

    def choice(self, name: str, default: str, allowed: Iterable[str]) -> str:
        allowed = list(allowed)
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise ConfigError(f"{self.label(name)}={value!r} is not allowed: use one of {', '.join(allowed)}.")
        return value

    def base64_text(self, name: str, default: str = "", *, secret: bool = True) -> str:
        """A base64-encoded text value, decoded (the seed's way of passing credentials)."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            shown = "its value" if secret else repr(value)
            raise ConfigError(f"{self.label(name)}: {shown} is not valid base64 text.") from None

    def as_dict(self) -> dict[str, str]:
        return dict(self._env)


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


#: the embedded default: jobs as processes on this machine, their command run by bash
DEFAULT_CONNECTOR = "local"
#: the variables that choose the plugins (``dssr-server --connector/--executor`` and ``dssr`` write over them)
CONNECTOR_VARIABLE = "JARVICE_BAREMETAL_CONNECTOR"
EXECUTOR_VARIABLE = "JARVICE_BAREMETAL_EXECUTOR"


def default_executor(connector: str, settings: Settings | None = None) -> str:
    """The executor the connector's class names as its default (:attr:`Connector.default_executor`);
    ``ConfigError`` when it names none (``JARVICE_BAREMETAL_EXECUTOR`` must say), ``""`` when there is no
    such connector (the error is loading it)."""
    from ._plugins import connector_class  # the plugins' module needs this one

    try:
        chosen = connector_class(connector, settings, setting=CONNECTOR_VARIABLE).default_executor
    except PluginError:
        return ""  # no such connector: loading it says so, named as its caller named it
    if chosen is None:
        raise ConfigError(f"{EXECUTOR_VARIABLE} is not set, and the connector {connector!r} has no default executor.")
    return chosen


def runs_host_commands(connector: str, executor: str, settings: Settings | None = None) -> bool:
    """Whether a submitted job runs its command as is on the server's own host, as the server's user: a
    connector whose jobs run here (:attr:`Connector.runs_jobs_here`) with an executor that does not
    confine them (:attr:`Executor.confines_jobs`)."""
    from ._plugins import connector_class, executor_class  # the plugins' module needs this one

    return (
        connector_class(connector, settings, setting=CONNECTOR_VARIABLE).runs_jobs_here
        and not executor_class(executor, settings, setting=EXECUTOR_VARIABLE).confines_jobs
    )


@dataclass(frozen=True)
class DownstreamSettings:
    """Which plugins a :class:`~dssr_core.Downstream` loads (each plugin reads its own settings)."""

    connector: str = DEFAULT_CONNECTOR
    executor: str = "shell"

    @classmethod
    def from_settings(cls, settings: Settings) -> "DownstreamSettings":
        """Read ``JARVICE_BAREMETAL_CONNECTOR`` (default ``local``) and ``JARVICE_BAREMETAL_EXECUTOR``
        (default :func:`default_executor` of the connector)."""
        connector = settings.text(CONNECTOR_VARIABLE) or DEFAULT_CONNECTOR
        return cls(connector, settings.text(EXECUTOR_VARIABLE) or default_executor(connector, settings))


def choose_plugins(
    settings: Settings, connector: str | None = None, executor: str | None = None, *, flags: bool = False
) -> Settings:
    """``settings`` with the plugin names given (by flags, or a caller) written over their variables.

    One rule for ``dssr-server``, ``dssr`` and ``dssr doctor``: a name given
    wins over its variable; without one, the executor is
    ``JARVICE_BAREMETAL_EXECUTOR``, else the default of the connector chosen
    (:func:`default_executor`, read by :meth:`DownstreamSettings.from_settings`
    after the override).  With ``flags``, messages name
    ``--connector``/``--executor`` instead of the variables.
    """
    chosen = {CONNECTOR_VARIABLE: connector, EXECUTOR_VARIABLE: executor}
    given = {name: value for name, value in chosen.items() if value}
    labels = {CONNECTOR_VARIABLE: "--connector", EXECUTOR_VARIABLE: "--executor"}
    return settings.updated({name: labels[name] for name in given} if flags else None, **given)
