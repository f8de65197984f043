"""The user-id mapping file: validated at load, re-read on change, keys never shown."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Callable

import paramiko
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dssr_core import BadRequest, ConfigError
from dssr_core.batch import UserMappingFile as MappingFile


def openssh_key(kind: str) -> str:
    makers: dict[str, Callable[[], ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]]
    makers = {
        "ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
    }
    key = makers[kind]()
    fmt = serialization.PrivateFormat.OpenSSH if kind == "ed25519" else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def entry(mail: str, user: str, key: str) -> dict[str, str]:
    return {
        "user": user.title(),
        "jarvice_user": user,
        "mail": mail,
        "mapped_user": user,
        "ssh_private_key_b64": base64.b64encode(key.encode()).decode(),
    }


def write(path: Path, entries: list[dict[str, str]]) -> Path:
    path.write_text(yaml.safe_dump({"users_id_mapping": entries}))
    return path


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_each_key_type_maps_the_email_to_its_user(tmp_path: Path, kind: str) -> None:
    mapping = MappingFile(str(write(tmp_path / "m.yaml", [entry("Kirby@Example.com", "kirby", openssh_key(kind))])))
    login = mapping.login_for("kirby@example.com")
    assert login.user == "kirby" and isinstance(login.key, paramiko.PKey)
    assert mapping.problems() == []


def test_unmapped_email_is_a_bad_request(tmp_path: Path) -> None:
    mapping = MappingFile(
        str(write(tmp_path / "m.yaml", [entry("kirby@example.com", "kirby", openssh_key("ed25519"))]))
    )
    with pytest.raises(BadRequest, match="luigi@example.com"):
        mapping.login_for("luigi@example.com")
    with pytest.raises(BadRequest):
        mapping.login_for(None)


def test_bad_entries_are_reported_by_email_without_the_key(tmp_path: Path) -> None:
    garbage = "not-a-key-" + "x" * 40
    path = write(
        tmp_path / "m.yaml",
        [
            entry("kirby@example.com", "kirby", openssh_key("ed25519")),
            entry("mario@example.com", "mario", garbage),
            entry("evil@example.com", "root;rm -rf /", openssh_key("ed25519")),
        ],
    )
    mapping = MappingFile(str(path))
    problems = mapping.problems()
    assert len(problems) == 2
    assert any("mario@example.com" in p for p in problems) and any("evil@example.com" in p for p in problems)
    assert not any(garbage in p or base64.b64encode(garbage.encode()).decode() in p for p in problems)
    assert mapping.login_for("kirby@example.com").user == "kirby"


def test_the_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "m.yaml", [entry("kirby@example.com", "kirby", openssh_key("ed25519"))])
    mapping = MappingFile(str(path))
    with pytest.raises(BadRequest):
        mapping.login_for("mario@example.com")
    write(
        path,
        [
            entry("kirby@example.com", "kirby", openssh_key("ed25519")),
            entry("mario@example.com", "mario", openssh_key("rsa")),
        ],
    )
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert mapping.login_for("mario@example.com").user == "mario"


def test_a_missing_or_malformed_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JARVICE_USERS_ID_MAPPING_FILE"):
        MappingFile(str(tmp_path / "absent.yaml")).load()
    bad = tmp_path / "bad.yaml"
    bad.write_text("users_id_mapping: [\n")
    assert "not valid YAML" in MappingFile(str(bad)).problems()[0]


def test_login_repr_never_shows_the_key(tmp_path: Path) -> None:
    key = openssh_key("ed25519")
    login = MappingFile(str(write(tmp_path / "m.yaml", [entry("kirby@example.com", "kirby", key)]))).login_for(
        "kirby@example.com"
    )
    assert repr(login) == "Login(user='kirby')"
    assert not any(line in repr(login) for line in key.splitlines()[1:-1])


def test_a_key_may_live_in_a_file_of_its_own_beside_the_mapping(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "kirby").write_text(openssh_key("ed25519"))
    (tmp_path / "mario").write_text(openssh_key("rsa"))
    kirby = {**entry("kirby@example.com", "kirby", ""), "ssh_private_key_file": "keys/kirby"}
    mario = {**entry("mario@example.com", "mario", ""), "ssh_private_key_file": str(tmp_path / "mario")}
    del kirby["ssh_private_key_b64"], mario["ssh_private_key_b64"]
    mapping = MappingFile(str(write(tmp_path / "m.yaml", [kirby, mario])))
    assert mapping.problems() == []
    assert mapping.login_for("kirby@example.com").user == "kirby"
    assert mapping.login_for("mario@example.com").user == "mario"


def test_a_key_file_that_is_missing_or_given_twice_is_reported_by_email(tmp_path: Path) -> None:
    secret = openssh_key("ed25519")
    missing = {**entry("kirby@example.com", "kirby", ""), "ssh_private_key_file": "keys/nope"}
    del missing["ssh_private_key_b64"]
    twice = {**entry("mario@example.com", "mario", secret), "ssh_private_key_file": "keys/mario"}
    mapping = MappingFile(str(write(tmp_path / "m.yaml", [missing, twice])))
    problems = mapping.problems()
    assert any(
        "kirby@example.com" in p and "keys/nope cannot be read (No such file or directory)" in p for p in problems
    )
    assert any("mario@example.com" in p and "not both" in p for p in problems)
    assert not any(secret.splitlines()[1] in p for p in problems)
