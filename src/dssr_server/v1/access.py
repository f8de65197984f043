"""Who is calling ``/v1``, and which jobs they may see and act on.

A caller presents ``Authorization: Bearer <token>``:

* the legacy API's shared token (``JARVICE_DSSR_AUTH_TOKEN``): the portal,
  which acts on every job;
* an identity token, verified exactly as ``/submit``'s ``bearer``
  (:class:`dssr_core.TokenVerifier`): a user, who acts on the jobs of the
  cluster user the connector maps them to (:meth:`dssr_core.Connector.user_for`)
  and on no other; with the site's administrator claim
  (``JARVICE_DSSR_ADMIN_CLAIM``), on every job.

A server with neither a shared token nor a verifier is open, as the legacy API
is then.  Another user's job is answered as if it did not exist (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dssr_core import BadRequest, ConfigError, Downstream, Forbidden, Identity, Unauthorized

#: the setting naming the claim that makes a token an administrator's
ADMIN_CLAIM_VARIABLE = "JARVICE_DSSR_ADMIN_CLAIM"


@dataclass(frozen=True)
class AdminClaim:
    """``CLAIM`` (true when the claim is ``true``) or ``CLAIM=VALUE`` (the claim equals VALUE or is a
    list holding it); a dotted ``CLAIM`` reads nested objects (``realm_access.roles=dssr-admin``)."""

    path: tuple[str, ...]
    value: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> "AdminClaim | None":
        if not text:
            return None
        claim, sep, value = text.partition("=")
        path = tuple(part.strip() for part in claim.split("."))
        if not all(path) or (sep and not value.strip()):
            raise ConfigError(
                f"{ADMIN_CLAIM_VARIABLE} must be CLAIM or CLAIM=VALUE (e.g. realm_access.roles=dssr-admin), "
                f"not {text!r}."
            )
        return cls(path, value.strip() if sep else None)

    def held_by(self, claims: Mapping[str, Any]) -> bool:
        found: Any = claims
        for part in self.path:
            if not isinstance(found, Mapping) or part not in found:
                return False
            found = found[part]
        if self.value is None:
            return found is True or (isinstance(found, str) and found.lower() == "true")
        if isinstance(found, list):
            return self.value in found
        return isinstance(found, str) and found == self.value


@dataclass(frozen=True)
class Caller:
    """A caller of ``/v1``: an administrator (every job) or the cluster user whose jobs they are."""

    admin: bool
    user: str | None = None
    identity: Identity | None = None

    def may_see(self, owner: str | None) -> bool:
        return self.admin or (self.user is not None and owner == self.user)


class Access:
    """Turns an ``Authorization`` header into a :class:`Caller` (or refuses it: 401, 403)."""

    def __init__(
        self, downstream: Downstream, shared: Callable[[str], bool] | None, admin_claim: AdminClaim | None
    ) -> None:
        self.downstream = downstream
        self.shared = shared
        self.admin_claim = admin_claim

    def caller(self, header: str) -> Caller:
        if self.shared is not None and self.shared(header):
            return Caller(admin=True)
        verifier = self.downstream.verifier
        if verifier is None:
            if self.shared is None:
                return Caller(admin=True)
            raise Unauthorized("This downstream requires a bearer token (Authorization: Bearer ...).")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("This downstream requires a bearer token (Authorization: Bearer ...).")
        try:
            identity = verifier.verify_token(token.strip())
        except BadRequest as exc:
            raise Unauthorized(exc.message) from None
        admin = self.admin_claim is not None and self.admin_claim.held_by(identity.claims)
        try:
            user = self.downstream.connector.user_for(identity)
        except BadRequest as exc:
            if not admin:
                raise Forbidden(exc.message) from None
            user = None
        if user is None and not admin:
            raise Forbidden("This downstream does not run jobs as separate users: only an administrator may use it.")
        return Caller(admin=admin, user=user, identity=identity)
