"""The server's container image, built from the repository's Containerfile with Debian's podman.

Nothing is pulled from a registry: the base image is a Debian 12 root made with
debootstrap (cached in /var/cache/dssr-test-container, like the cluster tier's
roots) and imported into podman storage of its own under that folder. pip in
the build reaches PyPI.

The podman options suit a root shell in a plain Debian host as well as the
Docker container the tests may run in: ``vfs`` storage (overlay on overlay is
refused), ``runc`` with cgroupfs (crun refuses hybrid cgroups), chroot isolation
for the build, and ``--ulimit`` within this process's hard limits (podman's
defaults exceed them inside a container).
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
import uuid
from pathlib import Path
from typing import Sequence

from tests.cluster.base import tail
from tests.cluster.images import debootstrap_root

PACKAGES = ("podman", "runc", "debootstrap")
CACHE = Path("/var/cache/dssr-test-container")
BASE_ROOT = CACHE / "bookworm-root"
BASE_INCLUDE = "python3,python3-venv,ca-certificates"
BASE_IMAGE = "localhost/dssr-test-base:bookworm"
IMAGE = "localhost/jarvice-dssr:test"
#: the image's unprivileged user (Containerfile)
IMAGE_UID = 10001


class Podman:
    """podman on the test's own storage."""

    def __init__(self) -> None:
        self.argv = [
            "podman",
            "--root",
            str(CACHE / "storage"),
            "--runroot",
            "/run/dssr-test-container",
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--runtime",
            "runc",
        ]

    def __call__(
        self, *args: str, stdin: bytes | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run(
            [*self.argv, *args],
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and cp.returncode != 0:
            raise RuntimeError(f"podman {args[0]} failed ({cp.returncode}): {cp.stderr.strip()[-2000:]}")
        return cp

    def ulimits(self) -> list[str]:
        """Modest open-file and process limits (ample for the server), within this process's hard limits."""
        out = []
        for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
            hard = resource.getrlimit(which)[1]
            value = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
            out += ["--ulimit", f"{name}={value}:{value}"]
        return out

    def clean(self) -> None:
        """Remove the images (and the layers only they used): vfs keeps a whole copy of each."""
        for image in (IMAGE, BASE_IMAGE):
            self("rmi", "--force", image, check=False)
        self("image", "prune", "--force", check=False)

    def import_base(self) -> float:
        """The debootstrap'ed root as BASE_IMAGE (the root is made once and cached). Seconds spent."""
        t0 = time.monotonic()
        self.clean()
        debootstrap_root(BASE_ROOT, "bookworm", BASE_INCLUDE)
        tar = subprocess.run(
            [
                "tar",
                "-C",
                str(BASE_ROOT),
                "--exclude=./var/cache/apt/archives/*.deb",
                "--exclude=./.dssr-complete",
                "-c",
                ".",
            ],
            capture_output=True,
            check=True,
        )
        cp = subprocess.run([*self.argv, "import", "-", BASE_IMAGE], input=tar.stdout, capture_output=True, timeout=600)
        if cp.returncode != 0:
            raise RuntimeError(f"podman import failed: {cp.stderr.decode(errors='replace')[-2000:]}")
        return time.monotonic() - t0

    def build(self, context: Path, log: Path) -> float:
        """``podman build`` of context/Containerfile as IMAGE on BASE_IMAGE; seconds spent."""
        # --layers=false: no image per step (each would be a whole copy of the root under vfs)
        args = [
            "build",
            "--layers=false",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--build-arg",
            f"BASE={BASE_IMAGE}",
        ]
        # The host's CA bundle for pip, mounted for the build only (not kept in the image): a
        # TLS-inspecting proxy that this host trusts is then trusted inside the build as well.
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if bundle.is_file():
            args += ["--volume", f"{bundle}:{bundle}:ro", "--build-arg", f"PIP_CERT={bundle}"]
        if os.environ.get("PIP_INDEX_URL"):
            args += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
        t0 = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.run(
                [*self.argv, *args, "-t", IMAGE, "-f", str(context / "Containerfile"), str(context)],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1200,
            ).returncode
        if rc != 0:
            raise RuntimeError(f"podman build failed ({rc}); see {log}:{tail(log)}")
        return time.monotonic() - t0


class Container:
    """One detached container of IMAGE; removed by :meth:`remove`."""

    def __init__(self, podman: Podman, options: Sequence[str], env: dict[str, str]) -> None:
        self.podman = podman
        self.name = f"dssr-test-{uuid.uuid4().hex[:8]}"
        env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        try:
            podman("run", "--detach", "--name", self.name, *podman.ulimits(), *options, *env_args, IMAGE)
        except BaseException:
            self.remove()  # a container that was created but did not start
            raise

    def logs(self) -> str:
        cp = self.podman("logs", self.name, check=False)
        return cp.stdout + cp.stderr

    def running(self) -> bool:
        cp = self.podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return cp.stdout.strip() == "true"

    def remove(self) -> None:
        self.podman("rm", "--force", "--time", "5", self.name, check=False)
