"""Bearer-token verification, with tokens signed here by keys generated for the test."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dssr_core import BadRequest, ConfigError, Settings, TokenVerifier

ISSUER = "https://idp.example.com/realms/jarvice"


def _pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def mint(key: Any, algorithm: str = "RS256", lifespan: int = 600, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "iat": now,
        "exp": now + lifespan,
        "email": "kirby@example.com",
        "preferred_username": "kirby",
        "aud": "jarvice",
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


def verifier(key: Any, **env: str) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings({"JARVICE_JWT_PUBLIC_KEY": _pem(key), **env}))


def test_a_good_rsa_token_gives_its_email_and_user(rsa_key: Any) -> None:
    identity = verifier(rsa_key, JARVICE_JWT_ISSUER=ISSUER).verify_token(mint(rsa_key))
    assert (identity.email, identity.username) == ("kirby@example.com", "kirby")


def test_a_good_ec_token_is_accepted(ec_key: Any) -> None:
    identity = verifier(ec_key).verify_token(mint(ec_key, "ES256"))
    assert identity.email == "kirby@example.com"


def test_a_bearer_prefix_is_accepted(rsa_key: Any) -> None:
    assert verifier(rsa_key).verify_token("Bearer " + mint(rsa_key)).email == "kirby@example.com"


def test_a_token_signed_by_another_key_is_refused(rsa_key: Any) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BadRequest, match="bad signature"):
        verifier(rsa_key).verify_token(mint(forger))


def test_a_token_with_its_claims_altered_is_refused(rsa_key: Any) -> None:
    header, payload, signature = mint(rsa_key).split(".")
    other = mint(rsa_key, email="mario@example.com").split(".")[1]
    with pytest.raises(BadRequest, match="bad signature"):
        verifier(rsa_key).verify_token(".".join([header, other, signature]))


def test_an_unsigned_token_is_refused(rsa_key: Any) -> None:
    token = jwt.encode({"email": "kirby@example.com", "exp": int(time.time()) + 60}, "", algorithm="none")
    with pytest.raises(BadRequest, match="bearer token is invalid"):
        verifier(rsa_key).verify_token(token)


def test_an_hs256_token_is_refused(rsa_key: Any) -> None:
    token = jwt.encode({"email": "kirby@example.com", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256")
    with pytest.raises(BadRequest, match="algorithm not allowed"):
        verifier(rsa_key).verify_token(token)


def test_an_expired_token_is_refused(rsa_key: Any) -> None:
    with pytest.raises(BadRequest, match="has expired"):
        verifier(rsa_key).verify_token(mint(rsa_key, lifespan=-600))


def test_a_token_expired_within_the_leeway_is_accepted(rsa_key: Any) -> None:
    assert verifier(rsa_key, JARVICE_JWT_LEEWAY="60").verify_token(mint(rsa_key, lifespan=-10)).email


def test_a_token_without_expiry_is_refused(rsa_key: Any) -> None:
    token = jwt.encode({"email": "kirby@example.com"}, rsa_key, algorithm="RS256")
    with pytest.raises(BadRequest, match="missing claim exp"):
        verifier(rsa_key).verify_token(token)


def test_a_token_from_another_issuer_is_refused(rsa_key: Any) -> None:
    with pytest.raises(BadRequest, match="does not trust"):
        verifier(rsa_key, JARVICE_JWT_ISSUER=ISSUER).verify_token(mint(rsa_key, iss="https://evil.example.com"))


def test_the_audience_is_accepted_in_aud(rsa_key: Any) -> None:
    check = verifier(rsa_key, JARVICE_JWT_AUDIENCE="jarvice")
    assert check.verify_token(mint(rsa_key, aud="jarvice")).email
    assert check.verify_token(mint(rsa_key, aud=["account", "jarvice"])).email


def test_the_audience_is_accepted_in_azp(rsa_key: Any) -> None:
    token = mint(rsa_key, aud="account", azp="jarvice")
    assert verifier(rsa_key, JARVICE_JWT_AUDIENCE="jarvice").verify_token(token).email


def test_a_token_for_another_audience_is_refused(rsa_key: Any) -> None:
    token = mint(rsa_key, aud="account", azp="other-client")
    with pytest.raises(BadRequest, match="audience mismatch"):
        verifier(rsa_key, JARVICE_JWT_AUDIENCE="jarvice").verify_token(token)


def test_a_missing_token_is_refused() -> None:
    check = TokenVerifier(verify=False)
    for token in (None, "", "   ", 12):
        with pytest.raises(BadRequest, match="no bearer token"):
            check.verify_token(token)


def test_garbage_is_refused_as_not_well_formed(rsa_key: Any) -> None:
    with pytest.raises(BadRequest, match="not a well-formed token"):
        verifier(rsa_key).verify_token("not-a-jwt")


def test_verify_false_reads_claims_without_checking(rsa_key: Any) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    check = TokenVerifier.from_settings(Settings({"JARVICE_JWT_VERIFY": "false"}))
    identity = check.verify_token(mint(forger, lifespan=-3600))
    assert identity.email == "kirby@example.com"
    assert check.describe() == {"token verification": "OFF"}


def test_errors_never_contain_the_token(rsa_key: Any) -> None:
    token = mint(rsa_key, lifespan=-600)
    with pytest.raises(BadRequest) as info:
        verifier(rsa_key).verify_token(token)
    assert token not in str(info.value) and token.split(".")[1] not in str(info.value)


def test_verification_on_without_a_key_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="JARVICE_JWT_PUBLIC_KEY or JARVICE_JWT_JWKS_URL"):
        TokenVerifier.from_settings(Settings({}))


def test_a_public_key_may_be_given_as_a_file(tmp_path: Any, rsa_key: Any) -> None:
    path = tmp_path / "idp.pem"
    path.write_text(_pem(rsa_key))
    check = TokenVerifier.from_settings(Settings({"JARVICE_JWT_PUBLIC_KEY": str(path)}))
    assert check.verify_token(mint(rsa_key)).email == "kirby@example.com"


def test_a_public_key_that_is_neither_pem_nor_a_file_is_named() -> None:
    with pytest.raises(ConfigError, match="JARVICE_JWT_PUBLIC_KEY is neither PEM text nor a readable file"):
        TokenVerifier.from_settings(Settings({"JARVICE_JWT_PUBLIC_KEY": "/nonexistent/key.pem"}))


def test_a_bad_pem_is_named() -> None:
    bad = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    with pytest.raises(ConfigError, match="JARVICE_JWT_PUBLIC_KEY does not hold a PEM public key"):
        TokenVerifier.from_settings(Settings({"JARVICE_JWT_PUBLIC_KEY": bad}))
