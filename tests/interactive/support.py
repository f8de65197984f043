"""What the interactive-job cluster tests share: a site (downstream + proxy), the test apps as job commands,
waiting for a job and its link, and headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from dssr_core import Downstream, JobRef, JobSpec, JobState, Settings
from dssr_core._interactive import InteractiveSettings
from dssr_core._proxy import JobProxy
from dssr_server.wire import info_answer
from dssr_singularity import SingularityExecutor
from tests.singularity.cluster_support import identity, unique, wait_end
from tests.singularity.helpers import SYSTEM

from .clients import WebSocket, get

KEY = "test-interactive-key-" + "k" * 32
APP = (Path(__file__).parent / "webapp.py").read_text()
#: the command's URL, as an AppDef command's ``url`` (the desktop and Jupyter use this shape)
URL_TEMPLATE = "http://%PUBLICADDR%:8888/?token=%RANDOM64%"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Site:
    """A downstream with interactive jobs on, and its proxy on a free loopback port."""

    def __init__(self, connector: Any, domain: str, port: int, idle: float = 60.0, **extra: str) -> None:
        self.port = port
        env = {
            "JARVICE_JOBS_DOMAIN": domain,
            "JARVICE_DSSR_INTERACTIVE_KEY": KEY,
            "JARVICE_DSSR_PROXY_LISTEN": f"127.0.0.1:{port}",
            "JARVICE_DSSR_PROXY_IDLE_TIMEOUT": str(idle),
            **extra,
        }
        self.settings = InteractiveSettings.from_settings(Settings(env))
        executor = SingularityExecutor(Settings({**SYSTEM, "JARVICE_SINGULARITY_OVERLAY_SIZE": "0"}))
        self.ds = Downstream(connector, executor, interactive=self.settings)
        assert self.ds.services is not None
        self.proxy = JobProxy(self.ds.services, "127.0.0.1", port, idle_timeout=idle).start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        self.proxy.close()


def app_command(delay: float = 0) -> str:
    source = base64.b64encode(APP.encode()).decode()
    wait = f"sleep {delay}; " if delay else ""
    return f'{wait}exec python3 -c "$(printf %s {source} | base64 -d)" %RANDOM64%'


def interactive_spec(cluster, nodes: int = 2, **kwargs: Any) -> JobSpec:
    values: dict[str, Any] = dict(
        name=unique("ia"),
        number=int(time.time() * 1000) % 10**9,
        nodes=nodes,
        image=f"docker.io/library/python:{unique('t')}",
        command=app_command(),
        interactive=True,
        url=URL_TEMPLATE,
        identity=identity(cluster, "kirby"),
    )
    values.update(kwargs)
    return JobSpec(**values)


def submit(ds: Downstream, spec: JobSpec) -> tuple[JobRef, str]:
    submission = ds.submit(spec)
    return JobRef(spec.name, spec.number, submission.jobid), submission.script


def wait_url(ds: Downstream, ref: JobRef, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = info_answer(ds.info(ref))
        if info["url"]:
            return info
        time.sleep(0.5)
    raise AssertionError(f"info gave no url within {timeout} s (last: {info})")


def wait_running(ds: Downstream, ref: JobRef, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ds.runstatus(ref)
        if status is not None and status.state is JobState.RUNNING:
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {ref.name} did not start within {timeout} s")


def end(ds: Downstream, ref: JobRef) -> None:
    ds.terminate(ref, force=True)
    wait_end(ds, ref)
    ds.connector.cleanup(ref)


def chromium() -> str:
    """The Chromium binary, installing Debian's ``chromium`` first when missing (as the cluster tier does)."""
    found = shutil.which("chromium")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=1200).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=True)
        subprocess.run(install, env=env, capture_output=True, timeout=1200, check=True)
    found = shutil.which("chromium")
    assert found, "Debian's chromium package installed no chromium command"
    return found


def browse(url: str, profile: Path, screenshot: Path, timeout: float = 60) -> str:
    """Open ``url`` in headless Chromium (a new profile), wait until the page's ``#result`` says how its
    WebSocket echo went, save a screenshot, and return that text.

    Driven over the DevTools protocol (the ``--dump-dom`` snapshot does not wait for WebSocket traffic).
    """
    profile.mkdir(parents=True, exist_ok=True)
    browser = subprocess.Popen(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1000,600",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and browser.poll() is None, "Chromium did not start"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        pages: list[dict[str, Any]] = []
        while not pages:
            assert time.monotonic() < deadline, "Chromium opened no page"
            listing = json.loads(get(f"http://127.0.0.1:{port}/json/list").body)
            pages = [p for p in listing if p.get("type") == "page" and p.get("url", "").startswith(url.split("?")[0])]
            time.sleep(0.2)
        devtools = DevTools(pages[0]["webSocketDebuggerUrl"].replace("ws://", "http://"))
        text = ""
        while not text.startswith(("echo ok", "echo wrong", "websocket error")):
            assert time.monotonic() < deadline, f"the page's result stayed {text!r}"
            time.sleep(0.3)
            found = devtools.call("Runtime.evaluate", expression="document.getElementById('result')?.textContent || ''")
            text = found["result"].get("value", "")
        shot = devtools.call("Page.captureScreenshot", format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        devtools.close()
        return text
    finally:
        browser.terminate()
        try:
            browser.wait(20)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


class DevTools:
    """A DevTools-protocol session on one page, over the test WebSocket client."""

    def __init__(self, url: str) -> None:
        self.ws = WebSocket(url)
        assert self.ws.accepted, (self.ws.status, self.ws.headers)
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self._id:
                assert "error" not in message, message
                return dict(message["result"])

    def close(self) -> None:
        self.ws.close()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: ``$DSSR_SCREENSHOT_DIR`` (to look at it afterwards) or the test's folder."""
    folder = Path(os.environ.get("DSSR_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
