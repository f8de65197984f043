"""The slurmrestd interface of the Slurm connector (``JARVICE_SLURM_INTERFACE=http``).

:class:`RestBackend` implements :class:`dssr_slurm.backend.SlurmBackend` over
slurmrestd's REST API; one adapter per API version family
(:mod:`.v0038`, :mod:`.v004x`, ...) holds everything that differs between versions, and
:data:`.versions.ADAPTERS` says which adapter speaks which version.
"""

from .backend import RestBackend
from .settings import RestSettings
from .versions import SUPPORTED_VERSIONS

__all__ = ["RestBackend", "RestSettings", "SUPPORTED_VERSIONS"]
