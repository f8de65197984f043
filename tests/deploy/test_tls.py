"""examples/tls/nginx-jarvice-dssr.conf: nginx from Debian terminating TLS in front of dssr-server.

The test makes a CA and a server certificate of its own, runs Debian's nginx with the
example's server block (its addresses and certificate paths replaced), and calls the
legacy API the way the upstream does, over https on loopback, verifying the certificate
against that CA. Marked ``cluster``: the root-and-Debian tier (nginx is apt-get installed),
skipped elsewhere with that tier's one line, never skipped with ``CI=true``.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dssr_server.app import MAX_BODY
from tests.cluster.fixtures import require_debian_root
from tests.helpers import SUCCESS_MARKER, legacy_template, submit_args
from tests.server.live import Answer, Client, Server, free_port, wait_for

pytestmark = pytest.mark.cluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tls" / "nginx-jarvice-dssr.conf"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server chain, server key) as PEM files: a test CA and a certificate for 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("dssr test CA"))
        .issuer_name(_name("dssr test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, chain, key_file = folder / "ca.pem", folder / "fullchain.pem", folder / "privkey.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, chain, key_file


def render(port: int, chain: Path, key: Path, upstream: str) -> str:
    """The example's server block with this test's address, certificate and upstream."""
    text = EXAMPLE.read_text()
    for pattern, value in (
        (r"listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        (r"listen \[::\]:443 ssl;\n", ""),  # no IPv6 needed on loopback
        (r"ssl_certificate +\S+;", f"ssl_certificate {chain};"),
        (r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};"),
        (r"proxy_pass http://127\.0\.0\.1:5000;", f"proxy_pass {upstream};"),
    ):
        text, count = re.subn(pattern, value, text)
        assert count == 1, f"the example has no single {pattern!r} any more"
    return text


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[tuple[Client, Server, Path]]:
    """(a client of https://127.0.0.1:PORT through nginx, the dssr-server behind it, the CA file)."""
    require_debian_root("nginx")
    token = uuid.uuid4().hex
    server = Server(tmp_path / "state", env={"JARVICE_DSSR_AUTH_TOKEN": token}).start()
    ca, chain, key = make_certificates(tmp_path)
    port = free_port()
    (tmp_path / "nginx").mkdir()
    (tmp_path / "jarvice-dssr.conf").write_text(render(port, chain, key, server.url))
    # a whole nginx.conf around the example, every path of nginx's own in this test's folder
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""user root;
worker_processes 1;
pid {tmp_path}/nginx/nginx.pid;
error_log {tmp_path}/nginx/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/nginx/access.log;
    client_body_temp_path {tmp_path}/nginx/body;
    proxy_temp_path {tmp_path}/nginx/proxy;
    fastcgi_temp_path {tmp_path}/nginx/fastcgi;
    uwsgi_temp_path {tmp_path}/nginx/uwsgi;
    scgi_temp_path {tmp_path}/nginx/scgi;
    include {tmp_path}/jarvice-dssr.conf;
}}
""")
    check = subprocess.run(
        ["nginx", "-t", "-c", str(conf), "-p", str(tmp_path / "nginx")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(tmp_path / "nginx"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    context = ssl.create_default_context(cafile=str(ca))
    client = Client(f"https://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}, context)
    try:
        wait_for(lambda: _answering(client) or nginx.poll() is not None, timeout=20)
        assert nginx.poll() is None, nginx.stderr.read().decode() if nginx.stderr else ""
        yield client, server, ca
    finally:
        nginx.terminate()
        nginx.wait(10)
        server.stop()


def _answering(client: Client) -> Answer | None:
    try:
        return client.get("/live")
    except OSError:
        return None


def test_the_upstreams_calls_go_through_nginx_over_verified_https(nginx_in_front: tuple[Client, Server, Path]) -> None:
    client, _server, _ca = nginx_in_front
    name = f"jarvice-tls-{uuid.uuid4().hex[:6]}"
    answer = client.post("/submit", submit_args(name, 3, legacy_template("echo hello over tls"), key="shell"))
    assert answer.status == 200, answer.text
    ref = {"name": name, "number": 3, "jobid": answer.json()[0]}
    status = client.post("/runstatus", ref)
    assert status.status == 200 and len(status.json()) == 4

    def ended() -> Answer | None:
        a = client.post("/exitstatus", ref)
        return a if a.status == 200 else None

    rc, _elapsed, (output, line) = wait_for(ended, timeout=30, interval=0.2).json()
    assert rc == 0 and "hello over tls" in output and SUCCESS_MARKER in output
    assert line == "<< termination state: COMPLETED -- see STDOUT for job errors >>"


def test_a_submission_as_large_as_the_server_accepts_passes_the_proxy(
    nginx_in_front: tuple[Client, Server, Path],
) -> None:
    limit = re.search(r"client_max_body_size (\d+)m;", EXAMPLE.read_text())
    assert limit and int(limit.group(1)) * 1024 * 1024 == MAX_BODY  # the proxy refuses nothing the server takes
    client, _server, _ca = nginx_in_front
    answer = client.post("/online", {"padding": "x" * 3_000_000})  # nginx's own default refuses above 1 MB
    assert answer.status == 200 and answer.json() is True


def test_the_bearer_token_is_still_checked_behind_the_proxy(nginx_in_front: tuple[Client, Server, Path]) -> None:
    client, _server, _ca = nginx_in_front
    anonymous = Client(client.url, {}, client.ssl_context)
    assert anonymous.get("/running").status == 401
    assert client.get("/running").status == 200


def test_a_client_that_does_not_trust_the_ca_is_refused_by_its_own_verification(
    nginx_in_front: tuple[Client, Server, Path],
) -> None:
    client, _server, _ca = nginx_in_front
    stranger = Client(client.url, client.headers, ssl.create_default_context())  # the system CAs only
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        stranger.get("/live")
