"""Interactive jobs: their public address, their per-job secrets and the URL the user opens.

An interactive job (an AppDef command with ``interactive: true``: a desktop, a
notebook, a web app) serves HTTP on one port, ``JARVICE_SERVICE_PORT``, of its
first node.  The user reaches it through the proxy that ``dssr-server`` runs
(:mod:`dssr_core.proxy`) at an address built from ``JARVICE_JOBS_DOMAIN``,
the same grammar as the JARVICE Helm chart:

* host-based (preferred): ``jobs.example.org`` -> ``https://<label>.jobs.example.org/``
  (a wildcard DNS record and certificate for ``*.jobs.example.org``);
* path-based: ``portal.example.org/job$`` -> ``https://portal.example.org/job<label>/``
  (``$`` stands for the job's label; the app learns the prefix from ``JARVICE_INGRESSPATH``).

Either may start with ``http://`` or ``https://`` (default ``https``: TLS is
the site's reverse proxy's) and carry a ``:port``.

A job's *label* is its number and a token nobody can guess (``42-k3j...``).
The label and the job's secrets (``%NIMBIXPASSWD%``, ``%RANDOM16%`` ...
``%RANDOM128%``) are derived with HMAC-SHA256 from ``JARVICE_DSSR_INTERACTIVE_KEY``
and the job's name and number: every server replica, and a restarted server,
finds the same values without keeping any job database.
"""

from .access import ServiceAccess
from .domain import JOBS_DOMAIN_VARIABLE, LABEL_PATTERN, LABEL_TOKEN_LENGTH, JobsDomain
from .secrets import (
    PASSWORD_LENGTH,
    PASSWORD_VARIABLE,
    RANDOM_LENGTHS,
    VNC_PASSWORD_VARIABLE,
    random_variable,
    vnc_password_file,
)
from .settings import (
    APP_PORTS_VARIABLE,
    DEFAULT_APP_PORTS,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_PROXY_LISTEN,
    DEFAULT_SERVICE_PORT,
    IDLE_TIMEOUT_VARIABLE,
    KEY_VARIABLE,
    MIN_KEY_LENGTH,
    PROXY_LISTEN_VARIABLE,
    SERVICE_PORT_VARIABLE,
    InteractiveSettings,
    parse_listen,
    parse_ports,
)
from .templates import DEFAULT_URL, HELP_FILE, MARKER_FILE, SERVICE_DIR, URL_FILE, substitute, template_port

__all__ = [
    "APP_PORTS_VARIABLE",
    "DEFAULT_APP_PORTS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_PROXY_LISTEN",
    "DEFAULT_SERVICE_PORT",
    "DEFAULT_URL",
    "HELP_FILE",
    "IDLE_TIMEOUT_VARIABLE",
    "InteractiveSettings",
    "JOBS_DOMAIN_VARIABLE",
    "JobsDomain",
    "KEY_VARIABLE",
    "LABEL_PATTERN",
    "LABEL_TOKEN_LENGTH",
    "MARKER_FILE",
    "MIN_KEY_LENGTH",
    "PASSWORD_LENGTH",
    "PASSWORD_VARIABLE",
    "PROXY_LISTEN_VARIABLE",
    "RANDOM_LENGTHS",
    "SERVICE_DIR",
    "SERVICE_PORT_VARIABLE",
    "ServiceAccess",
    "URL_FILE",
    "VNC_PASSWORD_VARIABLE",
    "parse_listen",
    "parse_ports",
    "random_variable",
    "substitute",
    "template_port",
    "vnc_password_file",
]
