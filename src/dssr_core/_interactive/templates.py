"""URL templates and the files rank 0 leaves in the job's service folder."""

from __future__ import annotations

import re
from typing import Mapping

#: the folder, inside the job's folder, where rank 0 leaves the app's URL template and help page
SERVICE_DIR = ".dssr-service"


#: files of :data:`SERVICE_DIR`: the marker a started interactive job writes, its URL template, its help
MARKER_FILE = "interactive"


URL_FILE = "url.txt"


HELP_FILE = "help.html"


#: the URL used when neither the command nor the image gives one
DEFAULT_URL = "https://%PUBLICADDR%/"


_PLACEHOLDER = re.compile(r"%([A-Z][A-Z0-9_]*)%")


#: ``scheme://%PUBLICADDR%[:port]`` at the start of a URL template
_TEMPLATE_ORIGIN = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://%PUBLICADDR%(?::(?P<port>[0-9]{1,5}))?")


_SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _first_line(template: str | None) -> str:
    text = (template or "").strip()
    return text.splitlines()[0].strip() if text else ""


def template_port(template: str | None) -> int | None:
    """The port a URL template names after ``%PUBLICADDR%`` (``https://%PUBLICADDR%:8888/`` -> 8888), the port
    the app listens on; None when it names none or its scheme's own (``:443`` of ``https``)."""
    match = _TEMPLATE_ORIGIN.match(_first_line(template))
    if match is None or match["port"] is None:
        return None
    port = int(match["port"])
    return None if _SCHEME_PORTS.get(match["scheme"].lower()) == port or not 1 <= port <= 65535 else port


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace each ``%NAME%`` known in ``values``; unknown ones stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)
