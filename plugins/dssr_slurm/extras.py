"""The Slurm connector's optional operations: hold, output by offset, the cluster, who a token's user is.

Hold is ``scontrol hold`` over the service user's SSH session with either
interface (the service user is the accounts' coordinator, as for release
over SSH).  Output is read by byte offset with ``tail -c`` and sent back in
base64, so that no byte is lost to text decoding.  The cluster is one
``scontrol -o -d show nodes; scontrol -o show partitions`` over SSH (``cli``), or
slurmrestd's ``GET nodes`` and ``GET partitions`` (``http``).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from dssr_core import (
    CLUSTER_USER_PATTERN,
    Batcher,
    ClusterError,
    ClusterInfo,
    Identity,
    JobRef,
    JobState,
    NotFound,
    OutputChunk,
    command,
)

from .backend import PREFIX, AcctRecord, SlurmBackend, SlurmJob
from .remote import ServiceShell
from .resources import parse_scontrol
from .settings import SlurmSettings
from .states import exit_code, job_state

#: the exit status of the read when the job's output file does not exist
_MISSING = 3


class SlurmExtras:
    """Mixed into :class:`~dssr_slurm.connector.SlurmConnector`, whose parts it uses."""

    backend: SlurmBackend
    shell: ServiceShell
    cfg: SlurmSettings
    _acct: Batcher[AcctRecord]

    def _find(self, ref: JobRef, *, fresh: bool = False) -> SlurmJob | None:
        raise NotImplementedError

    def _owner(self, ref: JobRef) -> str | None:
        raise NotImplementedError

    def _invalidate(self) -> None:
        raise NotImplementedError

    def _accounted_exit_code(self, ref: JobRef) -> int | None:
        """The exit code accounting holds for an ended job still in slurmctld (squeue does not say it);
        None while accounting has no complete record of it yet.  Batched with other look-ups."""
        try:
            record = self._acct.get([ref.jobid]).get(ref.jobid)
        except ClusterError:
            return None
        return exit_code(record.exit_code) if record is not None and record.complete else None

    def user_for(self, identity: Identity) -> str | None:
        return self.backend.user_for(identity)

    def hold(self, ref: JobRef) -> None:
        job = self._find(ref, fresh=True)
        if job is None or job_state(job.state) is not JobState.QUEUED:
            raise NotFound(f"Job {ref.jobid} is not queued: nothing to hold.")
        result = self.shell.run(command("scontrol", "hold", job.jobid))
        if result.rc != 0:
            raise ClusterError(f"scontrol hold failed: {result.stderr.strip()[:300]}")
        self._invalidate()

    def read_output(self, ref: JobRef, offset: int, limit: int = 65536) -> OutputChunk:
        owner = self._owner(ref)
        if owner is None or not CLUSTER_USER_PATTERN.match(owner):
            raise NotFound(f"Job {ref.jobid} has no output.")
        path = self.cfg.output_file(owner, PREFIX + ref.name)
        script = (
            f"test -e {command(path)} || exit {_MISSING}; "
            f"tail -c +{int(offset) + 1} -- {command(path)} | head -c {int(limit)} | base64 -w0"
        )
        result = self.shell.run(script)
        if result.rc == _MISSING:
            raise NotFound("The job has no output yet.")
        try:
            data = base64.b64decode(result.stdout.strip(), validate=True)
        except (ValueError, binascii.Error):
            data = None
        if result.rc != 0 or data is None:
            raise ClusterError(f"Reading the job output failed: {result.stderr.strip()[:300]}")
        return OutputChunk(data, int(offset) + len(data))

    def cluster(self) -> ClusterInfo:
        info = self.backend.cluster()
        if info is not None:
            return info
        marker = "--" + secrets.token_hex(8) + "--"
        result = self.shell.run(
            f"{command('scontrol', '-o', '-d', 'show', 'nodes')} && echo {marker} && "
            f"{command('scontrol', '-o', 'show', 'partitions')}"
        )
        nodes, found, partitions = result.stdout.partition(marker + "\n")
        if result.rc != 0 or not found:
            raise ClusterError(f"scontrol show nodes/partitions failed: {result.stderr.strip()[:300]}")
        return parse_scontrol(nodes, partitions)
