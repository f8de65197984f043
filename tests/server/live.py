"""A real dssr-server (waitress) in a subprocess on a free port, and a small form-posting client."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        assert self.content_type.startswith("application/json"), self.content_type
        return json.loads(self.body)


class FormClient:
    """The upstream's side of the legacy API: requests to ``self.url`` with ``self.headers``
    (verified against ``self.ssl_context`` for https)."""

    url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None = None

    def request(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={**self.headers, **(headers or {})}
        )
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_context) as resp:
                return Answer(resp.status, resp.headers.get("Content-Type", ""), resp.read())
        except urllib.error.HTTPError as err:
            return Answer(err.code, err.headers.get("Content-Type", ""), err.read())

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, args: Any = None, *, raw: str | None = None, **kw: Any) -> Answer:
        """POST ``args`` as the form field ``args`` (JSON); ``raw`` sends that form body as is."""
        if raw is None:
            raw = "" if args is None else urllib.parse.urlencode({"args": json.dumps(args)})
        return self.request("POST", path, data=raw.encode("utf-8"), **kw)


@dataclass
class Client(FormClient):
    """A client of a server started elsewhere (a container, behind a proxy)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None


@dataclass
class Server(FormClient):
    """One ``dssr-server --connector local --executor shell`` process (``flags`` replaces those flags)."""

    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    flags: list[str] | None = None

    @property
    def url(self) -> str:  # type: ignore[override]  # FormClient only reads it
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "Server":
        env = {**os.environ, "JARVICE_LOCAL_STATE_DIR": str(self.state_dir), **self.env}
        self.log_path = self.state_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dssr_server",
                *(
                    self.flags
                    if self.flags is not None
                    else ["--connector", "local", "--executor", "shell", "--host", "127.0.0.1", "--threads", "4"]
                ),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dssr-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.get("/live").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"dssr-server did not answer within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, and the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def wait_for(check: Callable[[], T | Literal[False] | None], timeout: float = 20.0, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)
