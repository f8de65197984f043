"""The Slurm connector's settings, read once from the environment (``JARVICE_SLURM_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from dssr_core import Settings
from dssr_core.batch import BatchSettings


@dataclass(frozen=True)
class SlurmSettings(BatchSettings):
    """The shared batch settings under ``JARVICE_SLURM_``, and Slurm's own."""

    #: ``cli`` (Slurm's commands over SSH) or ``http`` (slurmrestd)
    interface: str
    #: seconds between a terminate's TERM and its KILL
    kill_grace: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "SlurmSettings":
        return cls(
            **cls.common(settings, "JARVICE_SLURM", "the cluster's login node"),
            interface=settings.choice("JARVICE_SLURM_INTERFACE", "cli", ("cli", "http")),
            kill_grace=settings.number("JARVICE_SLURM_KILL_GRACE", 10.0, minimum=0.0),
        )
