"""The upstream's bearer token: verified before anyone is mapped to a cluster user.

Settings: ``JARVICE_JWT_VERIFY`` (default true), ``JARVICE_JWT_PUBLIC_KEY``
(PEM text or a file path), ``JARVICE_JWT_JWKS_URL``, ``JARVICE_JWT_ISSUER``,
``JARVICE_JWT_AUDIENCE`` (found in ``aud`` or in ``azp``, as Keycloak issues
them) and ``JARVICE_JWT_LEEWAY`` (seconds, default 60).  The token itself is
never logged nor put in an error message.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import jwt

from . import metrics
from ._checks import Check, failed, passed
from ._config import Settings
from ._errors import BadRequest, ConfigError
from ._job import Identity

log = logging.getLogger("dssr_core.identity")  # its name in logs, stable

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


@dataclass(frozen=True)
class TokenVerifier:
    """Checks a bearer token's signature, expiry, issuer and audience."""

    verify: bool = True
    public_key: Any = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: int = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        verify = settings.flag("JARVICE_JWT_VERIFY", True)
        pem = settings.text("JARVICE_JWT_PUBLIC_KEY")
        jwks_url = settings.text("JARVICE_JWT_JWKS_URL")
        key = None
        if pem:
            text = pem
            if "-----BEGIN" not in pem:
                if not os.path.isfile(pem):
                    raise ConfigError("JARVICE_JWT_PUBLIC_KEY is neither PEM text nor a readable file path.")
                with open(pem, encoding="utf-8") as handle:
                    text = handle.read()
            try:
                from cryptography.hazmat.primitives.serialization import load_pem_public_key

                key = load_pem_public_key(text.encode())
            except (ValueError, TypeError):
                raise ConfigError("JARVICE_JWT_PUBLIC_KEY does not hold a PEM public key (RSA or EC).") from None
        if verify and key is None and not jwks_url:
            raise ConfigError(
                "Bearer-token verification is on (JARVICE_JWT_VERIFY=true) but no key is configured: "
                "set JARVICE_JWT_PUBLIC_KEY or JARVICE_JWT_JWKS_URL, or JARVICE_JWT_VERIFY=false."
            )
        if not verify:
            log.warning(
                "JARVICE_JWT_VERIFY=false: bearer tokens are NOT verified; any caller can act as any mapped user."
            )
        return cls(
            verify=verify,
            public_key=key,
            jwks_url=jwks_url,
            issuer=settings.text("JARVICE_JWT_ISSUER"),
            audience=settings.text("JARVICE_JWT_AUDIENCE"),
            leeway=settings.integer("JARVICE_JWT_LEEWAY", 60, minimum=0, maximum=3600),
        )

    def describe(self) -> dict[str, str]:
        if not self.verify:
            return {"token verification": "OFF"}
        source = "JWKS " + str(self.jwks_url) if self.jwks_url and self.public_key is None else "public key"
        return {
            "token verification": f"on ({source}, issuer={self.issuer or 'any'}, audience={self.audience or 'any'})"
        }

    def check(self) -> Check:
        """Whether the keys that verify tokens load (``dssr doctor``): the public key, or the JWKS fetched now."""
        what = "bearer-token keys load"
        if not self.verify:
            return failed(
                what,
                "JARVICE_JWT_VERIFY=false: tokens are not verified, any caller can act as any "
                "mapped user; set JARVICE_JWT_PUBLIC_KEY or JARVICE_JWT_JWKS_URL and remove it",
            )
        if self.public_key is not None:
            size = getattr(self.public_key, "key_size", None)
            kind = self.public_key.__class__.__name__.lstrip("_").replace("PublicKey", "")
            return passed(what, f"JARVICE_JWT_PUBLIC_KEY: {kind} key{f' of {size} bits' if size else ''}")
        try:
            keys = _jwks_client(self.jwks_url or "").get_jwk_set(refresh=True).keys
        except jwt.PyJWKClientError as exc:
            return failed(
                what,
                f"JARVICE_JWT_JWKS_URL={self.jwks_url!r} cannot be read ({exc}): check the address "
                "and that this host reaches the identity provider",
            )
        if not keys:
            return failed(what, f"JARVICE_JWT_JWKS_URL={self.jwks_url!r} holds no usable signing key")
        kids = ", ".join(str(k.key_id) for k in keys)
        return passed(what, f"JARVICE_JWT_JWKS_URL: {len(keys)} key(s) ({kids})")

    def verify_token(self, token: object) -> Identity:
        """Return the token's identity, or raise :class:`BadRequest` saying why it is refused."""
        try:
            return self._verify(token)
        except _Refused as exc:
            metrics.recorder().token_refused(exc.reason)
            raise BadRequest(exc.message) from None

    def _verify(self, token: object) -> Identity:
        if not isinstance(token, str) or not token.strip():
            raise _Refused("missing", "The submission has no bearer token.")
        token = token.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            if not self.verify:
                claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
            else:
                claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise _Refused("expired", "The bearer token has expired.") from None
        except jwt.InvalidIssuerError:
            raise _Refused(
                "issuer", "The bearer token was issued by an identity provider this downstream does not trust."
            ) from None
        except jwt.ImmatureSignatureError:
            raise _Refused("not_yet_valid", "The bearer token is not valid yet.") from None
        except jwt.PyJWKClientError as exc:
            raise _Refused(
                "signing_key", f"The bearer token's signing key cannot be found ({exc.__class__.__name__})."
            ) from None
        except jwt.InvalidTokenError as exc:
            reason, text = _reason(exc)
            raise _Refused(reason, f"The bearer token is invalid ({text}).") from None
        email = claims.get("email")
        if email is not None and not isinstance(email, str):
            raise _Refused("claims", "The bearer token's email claim is not a string.")
        username = claims.get("preferred_username") or claims.get("sun") or claims.get("username")
        return Identity(email=email, username=str(username) if username else None, claims=claims, token=token)

    def _decode(self, token: str) -> dict[str, Any]:
        key = self.public_key
        if key is None:
            key = _jwks_client(self.jwks_url or "").get_signing_key_from_jwt(token).key
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            issuer=self.issuer,
            leeway=self.leeway,
            options={"verify_aud": False, "require": ["exp"]},
        )
        if self.audience is not None:
            aud = claims.get("aud", [])
            auds = [aud] if isinstance(aud, str) else list(aud or [])
            if self.audience not in auds and claims.get("azp") != self.audience:
                raise _Refused("audience", "The bearer token was not issued for this downstream (audience mismatch).")
        return claims


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _reason(exc: Exception) -> tuple[str, str]:
    """(metrics label, words for the message) of a PyJWT refusal."""
    if isinstance(exc, jwt.InvalidSignatureError):
        return "signature", "bad signature"
    if isinstance(exc, jwt.DecodeError):
        return "malformed", "not a well-formed token"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return "claims", f"missing claim {exc.claim}"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm", "algorithm not allowed"
    return "invalid", exc.__class__.__name__


_JWKS_CLIENTS: dict[str, "jwt.PyJWKClient"] = {}


def _jwks_client(url: str) -> "jwt.PyJWKClient":
    client = _JWKS_CLIENTS.get(url)
    if client is None:
        client = _JWKS_CLIENTS[url] = jwt.PyJWKClient(url, cache_keys=True, lifespan=300)
    return client
