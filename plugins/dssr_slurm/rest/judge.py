"""Whether a job submitted through slurmrestd could ever run, judged once, as early as possible.

``sbatch --test-only`` answers this over SSH; slurmrestd has no such call, and a held job skips
slurmctld's node-configuration check (it would wait for ever with reason ``BadConstraints``).  So:

1. **before the submission**, the request is checked against the cluster's shape
   (:class:`~dssr_slurm.rest.shape.Shape`: ``GET nodes`` and ``GET partitions``, read once per
   snapshot): a job that can never run is refused at once and nothing is submitted; a job that
   fits is submitted, released and answered with no further look;
2. **after the release**, only for a job the shape cannot judge, slurmctld's first look at it
   gives a start, a reason to wait, or one of :data:`~dssr_slurm.states.NEVER_RUNS` (then the job
   is cancelled and refused).  That look waits at most :data:`VERDICT_WAIT`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol

from dssr_core import BadRequest, ClusterError, SharedSnapshot

from ..backend import BatchRequest
from ..states import NEVER_RUNS, never_runs
from . import errors
from .adapter import Adapter
from .shape import FITS, UNDECIDED, Shape, Verdict
from .transport import Response

log = logging.getLogger(__name__)

#: seconds to wait, after a release, for slurmctld's first look at a job the cluster's shape could not judge
#: (0.2-2.4 s on the test clusters; a scheduler that defers may take longer, and the job is then taken as it
#: is), and between two looks
VERDICT_WAIT = 5.0
VERDICT_POLL = 0.1


class ServiceCall(Protocol):
    """The backend's call to slurmrestd as the service account (failures are ClusterErrors)."""

    def __call__(
        self, method: str, path: str, what: str, body: dict[str, Any] | None = None, *, allow_gone: bool = False
    ) -> Response: ...


class Judge:
    """One backend's judge: ``service`` calls slurmrestd, ``adapter`` gives the API version's adapter,
    ``cancel`` cancels a job; the cluster's shape is read at most once per ``ttl`` seconds."""

    def __init__(
        self, service: ServiceCall, adapter: Callable[[], Adapter], cancel: Callable[[str], None], ttl: float
    ) -> None:
        self._service, self._adapter, self._cancel = service, adapter, cancel
        self._shape: SharedSnapshot[Shape | None] = SharedSnapshot(self._read_shape, ttl)

    def verdict(self, request: BatchRequest) -> Verdict:
        """Whether ``request`` could ever run, from the cluster's shape; undecided when it could not be read."""
        shape = self._shape.get()
        return shape.verdict(request) if shape is not None else UNDECIDED

    def before_submission(self, request: BatchRequest) -> None:
        """Raise BadRequest, in Slurm's words, when the cluster's shape says no node could ever run ``request``."""
        verdict = self.verdict(request)
        if verdict.reason is not None:
            raise BadRequest(
                f"Slurm refused the job: {NEVER_RUNS[verdict.reason]} ({verdict.detail}, as slurmrestd describes "
                f"the cluster; Slurm's reason would be {verdict.reason}). Nothing was submitted."
            )

    def after_release(self, jobid: str, request: BatchRequest | None = None) -> None:
        """Cancel the released job ``jobid`` and raise BadRequest, in Slurm's words, when slurmctld finds that
        no node can ever run it; no look at all when the cluster's shape found that ``request`` fits.  A job
        already refused (cancelled with such a reason) is refused again."""
        if request is not None and self.verdict(request) == FITS:
            return
        adapter = self._adapter()
        path = f"{adapter.slurm}/job/{jobid}"
        deadline = time.monotonic() + VERDICT_WAIT
        while True:
            try:
                response = self._service("GET", path, f"reading job {jobid}", allow_gone=True)
            except ClusterError as exc:  # the job is submitted: a failed look only leaves it unjudged
                log.warning("job %s: could not read whether a node can run it: %s", jobid, exc)
                return
            items = [item for item in response.body.get("jobs") or [] if isinstance(item, dict)]
            if errors.failed(response) or not items:
                return
            job = adapter.job(items[0], time.time())
            if job.reason or job.state != "PENDING" or time.monotonic() >= deadline:
                break
            time.sleep(VERDICT_POLL)
        words = never_runs(job.reason)
        if words is None:
            return
        self._cancel(jobid)
        raise BadRequest(f"Slurm refused the job: {words} (job {jobid} was cancelled; Slurm's reason: {job.reason}).")

    def _read_shape(self) -> Shape | None:
        adapter = self._adapter()
        try:
            nodes = self._service("GET", f"{adapter.slurm}/nodes", "reading the nodes").body
            partitions = self._service("GET", f"{adapter.slurm}/partitions", "reading the partitions").body
        except ClusterError as exc:  # the submission is then judged by slurmctld after the release
            log.warning("could not read the cluster's nodes and partitions from slurmrestd: %s", exc)
            return None
        return Shape.parse(nodes, partitions)
