"""What one interactive job is given: its address, its secrets, its URL and help page."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Mapping

from .domain import JobsDomain
from .secrets import PASSWORD_VARIABLE, RANDOM_LENGTHS, VNC_PASSWORD_VARIABLE, random_variable, vnc_password_file
from .templates import _TEMPLATE_ORIGIN, DEFAULT_URL, _first_line, substitute


@dataclass(frozen=True)
class ServiceAccess:
    """Everything one interactive job is given: where it is reached, on which port, its secrets."""

    name: str
    number: int
    label: str
    port: int
    domain: JobsDomain
    password: str = field(repr=False)
    #: ``%RANDOMn%`` values by length
    randoms: Mapping[int, str] = field(repr=False)

    @property
    def public_addr(self) -> str:
        return self.domain.public_addr(self.label)

    @property
    def origin(self) -> str:
        return self.domain.origin(self.label)

    @property
    def base_url(self) -> str:
        return self.domain.base_url(self.label)

    @property
    def ingress_path(self) -> str | None:
        return self.domain.ingress_path(self.label)

    def environment(self) -> dict[str, str]:
        """Variables the app reads (not secret): its port, and its path prefix when path-based."""
        env = {"JARVICE_SERVICE_PORT": str(self.port)}
        if self.ingress_path is not None:
            env["JARVICE_INGRESSPATH"] = self.ingress_path
        return env

    def secrets(self) -> dict[str, str]:
        """The secret values, by the variable an executor passes them in (never in a script)."""
        values = {
            PASSWORD_VARIABLE: self.password,
            VNC_PASSWORD_VARIABLE: base64.b64encode(vnc_password_file(self.password)).decode(),
        }
        values.update({random_variable(n): self.randoms[n] for n in RANDOM_LENGTHS})
        return values

    def values(self, user: str = "") -> dict[str, str]:
        """Every placeholder this downstream knows for the job, name -> value."""
        values = {
            "PUBLICADDR": self.public_addr,
            "NIMBIXPASSWD": self.password,
            "NIMBIXUSER": user,
            "JOBNAME": self.name,
            "BASEURL": self.base_url,
        }
        values.update({f"RANDOM{n}": self.randoms[n] for n in RANDOM_LENGTHS})
        return values

    def connect_url(self, template: str | None, user: str = "") -> str:
        """The URL the user's browser opens, from the command's or the image's template.

        ``scheme://%PUBLICADDR%[:port]`` becomes this job's origin (the port in
        a template, such as the desktop's 5902 or a notebook's 8888, is where the
        app listens on the first node: the proxy goes there, see :func:`template_port`).
        A template that does not lead to the job's own address gives the job's
        root instead: the portal only links to the job.
        """
        text = _TEMPLATE_ORIGIN.sub(lambda _m: self.origin, _first_line(template) or DEFAULT_URL)
        url = substitute(text, self.values(user))
        root = self.origin
        if url != root and not url.startswith((root + "/", root + "?", root + "#")):
            return root + "/"
        return url

    def help_page(self, template: str, url: str, user: str = "") -> str:
        """The image's ``/etc/NAE/help.html`` with the job's values (``%CONNECTURL%`` too)."""
        return substitute(template, {**self.values(user), "CONNECTURL": url})
