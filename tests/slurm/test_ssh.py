"""dssr_core.batch._ssh: private keys in every accepted form, and the host-key policy."""

from __future__ import annotations

import base64
from pathlib import Path

import paramiko
import pytest

from dssr_core import ClusterError, ConfigError
from dssr_core.batch._ssh import HostKeyPolicy, fingerprint, load_private_key
from tests.core.test_usermap import openssh_key


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_private_key_loads_from_pem_text_and_from_base64(kind: str) -> None:
    text = openssh_key(kind)
    assert load_private_key(text).asbytes() == load_private_key(base64.b64encode(text.encode()).decode()).asbytes()


def test_unparseable_key_error_names_the_setting_not_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_private_key("c2VjcmV0LWJ1dC1ub3Qta2V5", "JARVICE_SLURM_SSH_PKEY")
    assert "JARVICE_SLURM_SSH_PKEY" in str(caught.value) and "c2VjcmV0" not in str(caught.value)


def host_key() -> paramiko.PKey:
    return load_private_key(openssh_key("ed25519"))


def test_fingerprint_is_openssh_sha256_form() -> None:
    fp = fingerprint(host_key())
    assert fp.startswith("SHA256:") and len(fp) == 7 + 43 and not fp.endswith("=")


def test_configured_fingerprint_accepts_that_key_and_refuses_another() -> None:
    key = host_key()
    policy = HostKeyPolicy(expected_fingerprint=fingerprint(key))
    policy.check("10.0.0.1", 22, key)
    with pytest.raises(ClusterError, match="refusing"):
        policy.check("10.0.0.1", 22, host_key())


def test_known_hosts_file_accepts_the_listed_key_and_refuses_unknown_hosts(tmp_path: Path) -> None:
    key = host_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"[10.0.0.1]:2222 {key.get_name()} {key.get_base64()}\n")
    policy = HostKeyPolicy(known_hosts=str(known))
    policy.check("10.0.0.1", 2222, key)
    with pytest.raises(ClusterError):
        policy.check("10.0.0.1", 2222, host_key())
    with pytest.raises(ClusterError, match="not in"):
        policy.check("10.0.0.2", 2222, key)


def test_without_configuration_the_first_key_is_trusted_and_a_changed_key_refused(tmp_path: Path) -> None:
    record = tmp_path / "seen"
    first, other = host_key(), host_key()
    policy = HostKeyPolicy(record_file=str(record))
    policy.check("h", 22, first)
    policy.check("h", 22, first)
    with pytest.raises(ClusterError, match="changed"):
        policy.check("h", 22, other)
    # a new process reading the record refuses the changed key too
    with pytest.raises(ClusterError, match="changed"):
        HostKeyPolicy(record_file=str(record)).check("h", 22, other)


def test_a_malformed_or_unreadable_record_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    record = tmp_path / "seen"
    record.write_text("# first-seen keys\n[h]:22 aa:bb:cc\n")
    with pytest.raises(ConfigError, match=r"^RECORD='.*seen', line 2: expected"):
        HostKeyPolicy(record_file=str(record), record_setting="RECORD")
    record.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="^RECORD=.* cannot be read"):
        HostKeyPolicy(record_file=str(record), record_setting="RECORD")


def test_the_record_is_not_used_when_the_key_is_pinned(tmp_path: Path) -> None:
    key, record = host_key(), tmp_path / "seen"
    policy = HostKeyPolicy(expected_fingerprint=fingerprint(key), record_file=str(record))
    policy.check("h", 22, key)
    assert not record.exists() and policy.describe() == f"fingerprint {fingerprint(key)}"


def test_a_malformed_fingerprint_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        HostKeyPolicy(expected_fingerprint="aa:bb:cc")
