"""The clusters' login nodes: an sshd on loopback, keys only, with a host key of its own."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.accounts import keygen
from tests.cluster.base import mkdir, write
from tests.cluster.ledger import Ledger

PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; made (and recorded) when missing


def sshd_config(
    *, port: int, host_key: Path | str, pid_file: Path | str, authorized_keys: Path | str, slurm_conf: Path | str
) -> str:
    """The test clusters' sshd: loopback, keys only (``<authorized_keys>/<user>``, root-owned), no PAM."""
    return f"""# dssr test cluster sshd (tests/cluster/sshd.py)
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}/%u
StrictModes yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
MaxStartups 100:30:200
MaxSessions 100
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
SetEnv SLURM_CONF={slurm_conf}
Subsystem sftp internal-sftp
"""


def host_key(ssh: Path, comment: str, port: int) -> tuple[str, Path]:
    """A fresh ed25519 host key in ``ssh`` and the known_hosts line for ``[127.0.0.1]:port``;
    returns (the public key line, the known_hosts file)."""
    keygen(ssh / "ssh_host_ed25519_key", "ed25519", comment)
    host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().strip()
    known_hosts = write(ssh / "known_hosts", f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n", 0o644)
    return host_pub, known_hosts


def ensure_privsep_dir(ledger: Ledger) -> None:
    if not PRIVSEP_DIR.exists():
        ledger.add("dirs", str(PRIVSEP_DIR))
        mkdir(PRIVSEP_DIR, 0o755, 0, 0)
