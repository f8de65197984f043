"""The local connector's settings (``JARVICE_LOCAL_*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dssr_core import ConfigError, Settings


def default_state_dir(settings: Settings) -> Path:
    """``$XDG_STATE_HOME/jarvice-dssr/local`` (``~/.local/state/...`` when unset)."""
    base = settings.text("XDG_STATE_HOME")
    if base is None:
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "jarvice-dssr" / "local"


@dataclass(frozen=True)
class LocalSettings:
    state_dir: Path
    data_dir: Path
    max_jobs: int
    kill_grace: float
    #: nodes of one job (each a bash process on this host)
    max_nodes: int = 16
    #: work beside the process holding the state folder (its server) instead of refusing to start
    beside_server: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "LocalSettings":
        state = settings.text("JARVICE_LOCAL_STATE_DIR")
        state_dir = Path(state).expanduser() if state else default_state_dir(settings)
        data = settings.text("JARVICE_LOCAL_DATA_DIR")
        data_dir = Path(data).expanduser() if data else state_dir / "data"
        local = cls(
            state_dir=state_dir.absolute(),
            data_dir=data_dir.absolute(),
            max_jobs=settings.integer("JARVICE_LOCAL_MAX_JOBS", os.cpu_count() or 1, minimum=1),
            kill_grace=settings.number("JARVICE_LOCAL_KILL_GRACE", 10.0, minimum=0.0),
            max_nodes=settings.integer("JARVICE_LOCAL_MAX_NODES", 16, minimum=1, maximum=1024),
            beside_server=settings.flag("JARVICE_LOCAL_BESIDE_SERVER", False),
        )
        local.make_dirs()
        return local

    def describe(self) -> dict[str, str]:
        """The start-up report's lines for these settings."""
        return {
            "state_dir": str(self.state_dir),
            "data_dir": str(self.data_dir),
            "max_jobs": str(self.max_jobs),
            "max_nodes": str(self.max_nodes),
            "kill_grace": f"{self.kill_grace:g}s",
        }

    def make_dirs(self) -> None:
        for variable, path in (("JARVICE_LOCAL_STATE_DIR", self.state_dir), ("JARVICE_LOCAL_DATA_DIR", self.data_dir)):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"{variable}={str(path)!r} cannot be created: {exc.strerror}.") from None
            if not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError(f"{variable}={str(path)!r} is not a writable folder.")
        (self.state_dir / "jobs").mkdir(exist_ok=True)
