"""The OCI registries of the 26.05 cluster and the busybox images in them, built offline (umoci, skopeo).

Two ``docker-registry`` on the 26.05 bridge: a public one (``dssr/busybox`` tags 1-4, ``dssr/nae`` tags 1-2:
images of JARVICE apps with ``/etc/NAE`` files) and a private one wanting a login (``dssr/private`` tag 1).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Callable

from tests.cluster.base import HarnessError, write
from tests.cluster.images import need

PUBLIC_REPO, PRIVATE_REPO, NAE_REPO = "dssr/busybox", "dssr/private", "dssr/nae"
REGISTRY_USER = "dssr-puller"

#: files of the ``dssr/nae`` images besides busybox: a JARVICE app's ``/etc/NAE`` (its connect URL
#: template and help page). Tag 1: a web app on JARVICE_SERVICE_PORT; tag 2: a notebook on a fixed port.
NAE_FILES = {
    "1": {
        "etc/NAE/url.txt": "https://%PUBLICADDR%/?token=%RANDOM64%&password=%NIMBIXPASSWD%&job=%JOBNAME%\n",
        "etc/NAE/help.html": (
            '<h1>Test app of job %JOBNAME%</h1>\n<p>Started for %NIMBIXUSER%: open <a href="%CONNECTURL%">the app</a>'
            " (password %NIMBIXPASSWD%).</p>\n"
        ),
    },
    "2": {"etc/NAE/url.txt": "https://%PUBLICADDR%:8888/?token=%RANDOM64%\n"},
}
#: what the images of a running cluster were built with: a cluster whose state says otherwise is not reused
IMAGES_VERSION = json.dumps(sorted(NAE_FILES.items()))
IMAGE_FILES = "image-files"

IMAGE_SCRIPT = r"""
set -eu
b=/var/lib/dssr/images
rm -rf "$b"; mkdir -p "$b"; cd "$b"
mk() {  # image $1 (marker /etc/dssr-image), tag $2 (/etc/dssr-tag: every tag has a layer of its own)
    t="$b/tree-$1-$2"; o="$b/oci-$1-$2"; u="$b/bundle-$1-$2"
    mkdir -p "$t/bin" "$t/etc" "$t/tmp" "$t/root" "$t/home" "$t/proc" "$t/sys" "$t/dev"
    cp /bin/busybox "$t/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$t/bin/$a"; done
    echo "$1" > "$t/etc/dssr-image"
    echo "$2" > "$t/etc/dssr-tag"
    echo "root:x:0:0:root:/root:/bin/sh" > "$t/etc/passwd"
    x="/var/lib/dssr/image-files/$1-$2"  # files of this image besides busybox (NAE_FILES)
    if [ -d "$x" ]; then cp -a "$x/." "$t/"; fi
    umoci init --layout "$o"
    umoci new --image "$o:base"
    umoci unpack --image "$o:base" "$u"
    cp -a "$t/." "$u/rootfs/"
    umoci repack --compress=gzip --image "$o:$2" "$u"
    umoci config --image "$o:$2" --config.cmd /bin/sh
}
for tag in 1 2 3 4; do
    mk public $tag
    skopeo copy -q --dest-tls-verify=false "oci:$b/oci-public-$tag:$tag" "docker://$REG/$PUB:$tag"
done
mk private 1
skopeo copy -q --dest-tls-verify=false --dest-creds "$CREDS" "oci:$b/oci-private-1:1" "docker://$PREG/$PRIV:1"
for tag in $NAE_TAGS; do
    mk nae $tag
    skopeo copy -q --dest-tls-verify=false "oci:$b/oci-nae-$tag:$tag" "docker://$REG/$NAE:$tag"
done
rm -rf "$b"
"""


def registry_config(address: str, data: str, htpasswd: str | None) -> str:
    """A docker-registry configuration listening on ``address`` (host:port), storing under ``data``."""
    auth = f"auth:\n  htpasswd:\n    realm: dssr-test\n    path: {htpasswd}\n" if htpasswd else ""
    return (
        f"# Written by tests/cluster/registry.py\nversion: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n  secret: {secrets.token_hex(16)}\n{auth}"
    )


Enter = Callable[[list[str]], list[str]]
Spawn = Callable[[str, list[str], dict[str, str]], "subprocess.Popen[bytes]"]


def start(
    state: Path, in_root_state: str, addresses: tuple[str, str], enter: Enter, spawn: Spawn, env: dict[str, str]
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """The public and the private registry (at ``addresses``), their data and htpasswd under ``state``/registry
    (``in_root_state`` inside the root); returns the private one's password and the two processes."""
    reg_pass = secrets.token_urlsafe(18)
    reg = state / "registry"
    cp = subprocess.run(
        enter(["htpasswd", "-Bbn", REGISTRY_USER, reg_pass]),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )
    if cp.returncode != 0:
        raise HarnessError(need("apache2-utils", f"htpasswd failed: {cp.stderr.strip()}"))
    write(reg / "htpasswd", cp.stdout, 0o644)
    inside = f"{in_root_state}/registry"
    write(reg / "public.yml", registry_config(addresses[0], f"{inside}/public", None))
    write(reg / "private.yml", registry_config(addresses[1], f"{inside}/private", f"{inside}/htpasswd"))
    procs = [
        spawn(name, enter(["docker-registry", "serve", f"{inside}/{conf}"]), env)
        for name, conf in (("registry", "public.yml"), ("private-registry", "private.yml"))
    ]
    return reg_pass, procs


def push_images(state: Path, enter: Enter, env: dict[str, str], addresses: tuple[str, str], reg_pass: str) -> None:
    """Build the busybox images in the root and push them to the registries (log: ``state``/log/images.log)."""
    for tag, files in NAE_FILES.items():
        for rel, text in files.items():
            write(state / IMAGE_FILES / f"nae-{tag}" / rel, text, 0o644)
    script_env = {
        **env,
        "REG": addresses[0],
        "PREG": addresses[1],
        "PUB": PUBLIC_REPO,
        "PRIV": PRIVATE_REPO,
        "NAE": NAE_REPO,
        "NAE_TAGS": " ".join(NAE_FILES),
        "CREDS": f"{REGISTRY_USER}:{reg_pass}",
    }
    cp = subprocess.run(
        enter(["/bin/sh", "-c", IMAGE_SCRIPT]), capture_output=True, check=False, text=True, timeout=300, env=script_env
    )
    write(state / "log" / "images.log", cp.stdout + cp.stderr)
    if cp.returncode != 0:
        last = (cp.stderr.strip().splitlines() or ["?"])[-1]
        raise HarnessError(need("umoci/skopeo/busybox-static", f"building or pushing the test images failed: {last}"))


def images(addresses: tuple[str, str]) -> dict[str, str]:
    """Cluster.images: "public"/"private"/"nae" -> registry/repository."""
    return {
        "public": f"{addresses[0]}/{PUBLIC_REPO}",
        "private": f"{addresses[1]}/{PRIVATE_REPO}",
        "nae": f"{addresses[0]}/{NAE_REPO}",
    }
