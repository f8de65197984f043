"""The Grid Engine connector's settings, read once from the environment (``JARVICE_GE_*``)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from dssr_core import ConfigError, Settings
from dssr_core.batch import BatchSettings

#: the accounting file as the login node's environment names it
DEFAULT_ACCOUNTING = "$SGE_ROOT/$SGE_CELL/common/accounting"
_WORD = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class GESettings(BatchSettings):
    """The shared batch settings under ``JARVICE_GE_``, and Grid Engine's own."""

    #: the parallel environment every job runs in (allocation_rule 1, control_slaves TRUE)
    pe: str
    #: the queue jobs go to when the job names no partition (None: Grid Engine chooses)
    queue: str | None
    #: the complex that counts GPUs per host (None: GPU requests are refused)
    gpu_resource: str | None
    accounting_file: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "GESettings":
        common = cls.common(settings, "JARVICE_GE", "a Grid Engine submit host")
        words = {
            "JARVICE_GE_PE": settings.text("JARVICE_GE_PE", "dssr"),
            "JARVICE_GE_QUEUE": settings.text("JARVICE_GE_QUEUE"),
            "JARVICE_GE_GPU_RESOURCE": settings.text("JARVICE_GE_GPU_RESOURCE"),
        }
        for name, value in words.items():
            if value is not None and not _WORD.match(value):
                raise ConfigError(f"{name}={value!r} is not a Grid Engine object name (letters, digits, _.@-).")
        accounting = settings.text("JARVICE_GE_ACCOUNTING_FILE", DEFAULT_ACCOUNTING) or DEFAULT_ACCOUNTING
        if accounting != DEFAULT_ACCOUNTING and not posixpath.isabs(accounting):
            raise ConfigError(f"JARVICE_GE_ACCOUNTING_FILE={accounting!r} is not an absolute path.")
        return cls(
            **common,
            pe=words["JARVICE_GE_PE"] or "dssr",
            queue=words["JARVICE_GE_QUEUE"],
            gpu_resource=words["JARVICE_GE_GPU_RESOURCE"],
            accounting_file=accounting,
        )
