"""Pooled SSH sessions to a cluster: one kept-open connection per cluster user.

:class:`SSHPool` keeps one paramiko :class:`~paramiko.Transport` per login
(user + key), opened on first use and shared by every thread (a transport
carries many concurrent channels).  Each remote command runs in its own
channel with a time limit.  A dropped connection is reopened; a command that
may safely run twice (``idempotent``) is retried once, and any command is
retried when its channel could not even be opened (it never reached the host).

Host keys are checked by :class:`~dssr_core.sshkeys.HostKeyPolicy`.

Private keys never appear in logs, errors or reprs.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import metrics
from .._errors import ClusterError
from ._sshkeys import HostKeyPolicy, fingerprint, load_private_key

if TYPE_CHECKING:
    import paramiko


log = logging.getLogger("dssr_core.batch.ssh")  # its name in logs, stable
#: the logger every paramiko Transport writes to (its default log channel)
PARAMIKO_TRANSPORT_LOGGER = "paramiko.transport"


def script_command(text: str) -> tuple[str, bytes]:
    """(the remote command, its standard input) that run the bash script ``text`` on a login host.

    ``bash -s`` reads a script from a pipe one byte at a time (it must not read past the command it
    runs next), one system call per byte: a 7 KB submission script cost about 3 ms of CPU that way on
    the test machine, per submission.  Here bash reads the script whole with one ``read -N`` (a few
    system calls) and runs it with ``eval``.  The script is sent as one ``{ ... }`` group, which bash
    parses whole before it runs any of it, so a script cut short (the connection lost while it was
    being sent) is a syntax error and runs nothing, where ``bash -s`` would run what had arrived.
    """
    data = ("{\n" + text + ("" if text.endswith("\n") else "\n") + "}\n").encode("utf-8")
    # -N counts characters: the byte count is never fewer (a shorter read ends at the end of input)
    return f"bash -c 'IFS= read -r -N {len(data)} s; eval \"$s\"'", data


class RefusedChannelFilter(logging.Filter):
    """paramiko logs each refused channel open at ERROR (``Secsh channel N open FAILED: Connection refused:
    Connect failed``) and then raises ``ChannelException``, which the caller handles: for a tunnel to an
    interactive app that is not listening (not yet, or no longer) that is a normal path, which the proxy
    reports once at INFO.  Such a record goes on at DEBUG when that logger shows DEBUG, else nowhere."""

    _REFUSED = re.compile(r"^Secsh channel [0-9]+ open FAILED: ")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not isinstance(record.msg, str) or not self._REFUSED.match(record.msg):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


def quiet_refused_channels() -> None:
    """Put :class:`RefusedChannelFilter` on paramiko's transport logger (once)."""
    logger = logging.getLogger(PARAMIKO_TRANSPORT_LOGGER)
    if not any(isinstance(f, RefusedChannelFilter) for f in logger.filters):
        logger.addFilter(RefusedChannelFilter())


quiet_refused_channels()

__all__ = ["HostKeyPolicy", "Login", "Result", "SSHPool", "fingerprint", "load_private_key"]


@dataclass(frozen=True)
class Result:
    """What a remote command gave back."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class Login:
    """A cluster user and the private key it logs in with (never shown)."""

    user: str
    key: paramiko.PKey = field(repr=False, compare=False)

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.user, fingerprint(self.key))


class _Dropped(Exception):
    """The connection failed before the command was sent (safe to retry anything)."""


class SSHPool:
    """One kept-open SSH connection per login to one host, shared by all threads."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        policy: HostKeyPolicy | None = None,
        *,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        keepalive: int = 15,
    ) -> None:
        self.host = host
        self.port = port
        self.policy = policy or HostKeyPolicy()
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.keepalive = keepalive
        self._transports: dict[tuple[str, str], paramiko.Transport] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._closed = False
        #: logins whose connection died and was forgotten (their next connection is a reconnect)
        self._dropped: set[tuple[str, str]] = set()

    # -- connections -----------------------------------------------------------
    def _lock_for(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def transport(self, login: Login) -> paramiko.Transport:
        """The open transport of ``login``, opened (once, whatever the number of callers) when needed."""
        key = login.pool_key
        current = self._transports.get(key)
        if current is not None and current.is_active():
            return current
        with self._lock_for(key):
            current = self._transports.get(key)
            if current is not None and current.is_active():
                return current
            if current is not None:
                current.close()
            if self._closed:
                raise ClusterError("The SSH pool is closed.", transient=False)
            fresh = self._connect(login)
            self._transports[key] = fresh
            metrics.recorder().ssh_connection(reconnect=current is not None or key in self._dropped)
            return fresh

    def _connect(self, login: Login) -> paramiko.Transport:
        import paramiko  # here, not at the top: loaded with the first SSH use, not on import

        where = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise ClusterError(f"Cannot reach the cluster's SSH server at {where} ({exc.strerror or exc}).") from None
        # small request/answer packets: without TCP_NODELAY each command waits on delayed ACKs (~40 ms)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.connect_timeout
            transport.start_client(timeout=self.connect_timeout)
            self.policy.check(self.host, self.port, transport.get_remote_server_key())
            transport.auth_publickey(login.user, login.key)
        except paramiko.AuthenticationException:
            transport.close()
            raise ClusterError(
                f"SSH login as {login.user!r} on {where} was refused (the key is not authorized for that user).",
                transient=False,
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise ClusterError(f"SSH to {where} as {login.user!r} failed ({exc.__class__.__name__}: {exc}).") from None
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(self.keepalive)
        log.info("SSH connection opened to %s as %s", where, login.user)
        return transport

    def _drop_if_dead(self, login: Login, transport: paramiko.Transport) -> None:
        """Forget a connection that died; one refused or broken channel leaves a live connection alone."""
        if transport.is_active():
            time.sleep(0.05)
            return
        self._drop(login, transport)

    def _drop(self, login: Login, transport: paramiko.Transport) -> None:
        key = login.pool_key
        with self._lock_for(key):
            if self._transports.get(key) is transport:
                del self._transports[key]
                self._dropped.add(key)
        transport.close()

    # -- commands ---------------------------------------------------------------
    def run(
        self,
        login: Login,
        command: str,
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        idempotent: bool = True,
        kind: str | None = None,
    ) -> Result:
        """Run ``command`` (a shell command line, already quoted) as ``login``.

        Returns its exit code and output; raises :class:`ClusterError` when the
        host cannot be reached or the command does not finish within ``timeout``
        (default: the pool's ``command_timeout``).  ``stdin`` is sent then closed.
        ``kind`` names the command in metrics (default: its first word).
        """
        with metrics.cluster_call(kind or command.split(None, 1)[0]) as call:
            result = self._run(login, command, timeout, stdin, idempotent)
            if result.rc != 0:
                call.outcome = metrics.ERROR
            return result

    def _run(self, login: Login, command: str, timeout: float | None, stdin: bytes | None, idempotent: bool) -> Result:
        limit = self.command_timeout if timeout is None else timeout
        for attempt in (1, 2):
            transport = self.transport(login)
            try:
                return self._exec(transport, command, limit, stdin)
            except _Dropped as exc:
                self._drop_if_dead(login, transport)
                if attempt == 2:
                    raise ClusterError(f"The SSH connection to {self.host}:{self.port} was lost ({exc}).") from None
                log.info("SSH connection to %s as %s lost; reconnecting", self.host, login.user)
            except _Lost as exc:
                self._drop_if_dead(login, transport)
                if attempt == 2 or not idempotent:
                    raise ClusterError(
                        f"The SSH connection to {self.host}:{self.port} was lost while a command ran ({exc})."
                    ) from None
                log.info("SSH connection to %s as %s lost during a command; retrying once", self.host, login.user)
        raise AssertionError("unreachable")

    def _exec(self, transport: paramiko.Transport, command: str, limit: float, stdin: bytes | None) -> Result:
        import paramiko  # here, not at the top: loaded with the first SSH use, not on import

        deadline = time.monotonic() + limit
        try:
            channel = transport.open_session(timeout=min(limit, self.connect_timeout))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise _Dropped(str(exc) or exc.__class__.__name__) from None
        try:
            channel.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                channel.exec_command(command)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise _Dropped(str(exc) or exc.__class__.__name__) from None
            return self._collect(channel, deadline, limit, stdin)
        finally:
            try:
                channel.close()
            except (paramiko.SSHException, OSError, EOFError):
                pass  # the connection is gone; the caller has its answer or its error already

    def _collect(self, channel: paramiko.Channel, deadline: float, limit: float, stdin: bytes | None) -> Result:
        import paramiko  # here, not at the top: loaded with the first SSH use, not on import

        out, err = bytearray(), bytearray()
        try:
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                channel.settimeout(remaining)
                chunk = channel.recv(65536)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if not chunk:
                    break
                out += chunk
            while not channel.exit_status_ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not channel.status_event.wait(remaining):
                    raise socket.timeout()
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            rc = channel.recv_exit_status()
        except socket.timeout:
            raise ClusterError(f"A command on the cluster did not finish within {limit:g} s.") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise _Lost(str(exc) or exc.__class__.__name__) from None
        if rc == -1:
            raise _Lost("no exit status (the connection closed)")
        return Result(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def open_tunnel(
        self, login: Login, dest_host: str, dest_port: int, *, timeout: float | None = None
    ) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to ``dest_host:dest_port`` as seen from the SSH host.

        The channel behaves like a connected socket (``send``/``recv``/``close``,
        ``settimeout``); use one per HTTP connection, e.g. to reach a
        slurmrestd that listens only on the cluster's login node.  Raises
        :class:`ClusterError` when the host refuses the forward or cannot be reached.
        """
        import paramiko  # here, not at the top: loaded with the first SSH use, not on import

        limit = self.connect_timeout if timeout is None else timeout
        for attempt in (1, 2):
            transport = self.transport(login)
            try:
                return transport.open_channel("direct-tcpip", (dest_host, dest_port), ("127.0.0.1", 0), timeout=limit)
            except paramiko.ChannelException as exc:
                raise ClusterError(f"The SSH host refused a tunnel to {dest_host}:{dest_port} ({exc.text}).") from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self._drop(login, transport)
                if attempt == 2:
                    raise ClusterError(f"Cannot open a tunnel to {dest_host}:{dest_port} over SSH ({exc}).") from None
        raise AssertionError("unreachable")

    def check_host(self) -> str:
        """Connect afresh, check the host key against the policy, and close; the key's fingerprint.

        Raises :class:`ClusterError` when the host cannot be reached or its key is refused.
        """
        import paramiko  # here, not at the top: loaded with the first SSH use, not on import

        where = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise ClusterError(f"Cannot reach the cluster's SSH server at {where} ({exc.strerror or exc}).") from None
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.connect_timeout
            transport.start_client(timeout=self.connect_timeout)
            key = transport.get_remote_server_key()
            self.policy.check(self.host, self.port, key)
            return fingerprint(key)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ClusterError(f"SSH to {where} failed ({exc.__class__.__name__}: {exc}).") from None
        finally:
            transport.close()

    def banner(self, timeout: float = 5.0) -> str:
        """Connect afresh and read the SSH server's banner line (a cheap "is sshd up" check)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                data = sock.recv(256)
        except OSError as exc:
            raise ClusterError(
                f"The cluster's SSH server at {self.host}:{self.port} does not answer ({exc.strerror or exc})."
            ) from None
        if not data.startswith(b"SSH-"):
            raise ClusterError(f"{self.host}:{self.port} does not speak SSH.")
        return data.split(b"\r\n", 1)[0].decode("ascii", "replace")

    def close(self) -> None:
        """Close every connection.  Idempotent."""
        with self._guard:
            self._closed = True
            transports = list(self._transports.values())
            self._transports.clear()
        for transport in transports:
            transport.close()


class _Lost(Exception):
    """The connection dropped after the command was sent (it may have run)."""
