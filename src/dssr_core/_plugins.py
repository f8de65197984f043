"""Plugin discovery through entry points (groups ``dssr.connectors`` and ``dssr.executors``).

Entry points are read as dotted strings and imported only when a plugin is
loaded, so listing what is installed never imports plugin code.  A connector
shipped by another distribution is found exactly like the bundled ones.
"""

from __future__ import annotations

import sys
from types import MappingProxyType
from typing import Mapping, TypeVar

from ._config import Settings
from ._connector import Connector
from ._errors import PluginError
from ._executor import Executor

if sys.version_info >= (3, 12):
    from importlib.metadata import EntryPoint, entry_points
else:  # pragma: no cover - depends on the interpreter
    from importlib_metadata import EntryPoint, entry_points

CONNECTORS_GROUP = "dssr.connectors"
EXECUTORS_GROUP = "dssr.executors"

T = TypeVar("T", Connector, Executor)


def _installed(group: str) -> Mapping[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return MappingProxyType(dict(sorted(found.items())))


def available_connectors() -> Mapping[str, str]:
    """Installed connectors: name -> ``module:Class`` (read-only; nothing imported)."""
    return MappingProxyType({name: ep.value for name, ep in _installed(CONNECTORS_GROUP).items()})


def available_executors() -> Mapping[str, str]:
    """Installed executors: name -> ``module:Class`` (read-only; nothing imported)."""
    return MappingProxyType({name: ep.value for name, ep in _installed(EXECUTORS_GROUP).items()})


def _class(group: str, kind: str, base: type[T], name: str, settings: Settings | None, setting: str | None) -> type[T]:
    installed = _installed(group)
    ep = installed.get(name)
    # the setting that chose the plugin leads the message (a variable, or the flag the user typed)
    lead = f"{settings.label(setting) if settings is not None else setting}: " if setting else ""
    if ep is None:
        names = ", ".join(installed) or "none"
        raise PluginError(f'{lead}No such {kind} "{name}". Available {kind}s: {names}')
    try:
        cls = ep.load()
    except (ImportError, AttributeError) as exc:  # module missing, or the class missing from it
        dist = getattr(ep, "dist", None)
        package = dist.name if dist is not None else ep.value.split(":")[0].split(".")[0]
        raise PluginError(
            f'{lead}The {kind} "{name}" cannot be imported ({exc}); install or repair the package {package!r}.'
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f'{lead}The {kind} "{name}" ({ep.value}) is not a {base.__name__} subclass.')
    return cls


def connector_class(name: str, settings: Settings | None = None, *, setting: str | None = None) -> type[Connector]:
    """The class registered as connector ``name``, not built (:func:`load_connector`'s errors)."""
    return _class(CONNECTORS_GROUP, "connector", Connector, name, settings, setting)  # type: ignore[type-abstract]  # a subclass of the ABC is what is looked for


def executor_class(name: str, settings: Settings | None = None, *, setting: str | None = None) -> type[Executor]:
    """The class registered as executor ``name``, not built (:func:`load_executor`'s errors)."""
    return _class(EXECUTORS_GROUP, "executor", Executor, name, settings, setting)  # type: ignore[type-abstract]  # a subclass of the ABC is what is looked for


def load_connector(name: str, settings: Settings | None = None, *, setting: str | None = None) -> Connector:
    """Build the connector registered as ``name``; raises :class:`PluginError` listing the installed ones
    (led by ``setting``, the variable that chose it, as :meth:`Settings.label` shows it)."""
    return connector_class(name, settings, setting=setting)(settings if settings is not None else Settings())


def load_executor(name: str, settings: Settings | None = None, *, setting: str | None = None) -> Executor:
    """Build the executor registered as ``name``; raises :class:`PluginError` listing the installed ones
    (led by ``setting``, the variable that chose it, as :meth:`Settings.label` shows it)."""
    return executor_class(name, settings, setting=setting)(settings if settings is not None else Settings())
