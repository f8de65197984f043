"""What ``dssr doctor`` and ``/ready`` are made of: checks, node probes, and the last cluster contact.

Plugins add their own site checks by overriding :meth:`Connector.diagnose
<dssr_core.Connector.diagnose>` (checks of the cluster) and
:meth:`Executor.node_probes <dssr_core.Executor.node_probes>` (scripts the
connector runs on the compute nodes, e.g. "is the container runtime there").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Check:
    """One verdict: ``what`` was checked, whether it is right, and why (with what to change when not)."""

    what: str
    ok: bool
    why: str = ""
    #: how long the check took, when worth showing (``dssr doctor --submit`` stages)
    seconds: float | None = None
    #: for a failed :meth:`Connector.local_checks <dssr_core.Connector.local_checks>` verdict: whether
    #: ``dssr-server`` refuses to start on it (True), or starts and warns (a fault it works around,
    #: such as one bad entry of a file it re-reads)
    blocks: bool = True

    def line(self) -> str:
        """``OK|FAIL <what> — <why>`` (the format of ``dssr doctor``)."""
        took = f" ({self.seconds:.2f} s)" if self.seconds is not None else ""
        why = f" — {self.why}" if self.why else ""
        return f"{'OK' if self.ok else 'FAIL'} {self.what}{took}{why}"


def passed(what: str, why: str = "", seconds: float | None = None) -> Check:
    return Check(what, True, why, seconds)


def failed(what: str, why: str, seconds: float | None = None, *, blocks: bool = True) -> Check:
    return Check(what, False, why, seconds, blocks)


@dataclass(frozen=True)
class NodeProbe:
    """A check an executor wants run on each compute node.

    ``script`` is bash, run once per node by the connector as a cluster user;
    ``judge(node, rc, output)`` turns one node's exit status and output
    (stdout and stderr together) into a :class:`Check`.
    """

    what: str
    script: str
    judge: Callable[[str, int, str], Check] = field(repr=False)


@dataclass(frozen=True)
class Contact:
    """The outcome of a connector's latest exchange with its cluster (what ``/ready`` reads)."""

    #: when it happened (``time.time()``)
    at: float
    ok: bool
    #: why it failed (one sentence, no secret); empty when ``ok``
    error: str = ""

    def age(self, now: float | None = None) -> float:
        """Seconds since the contact."""
        return max(0.0, (time.time() if now is None else now) - self.at)
