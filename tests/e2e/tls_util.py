"""Helpers of the TLS and connection tests: a throw-away CA and server certificates made with `cryptography`, and a
way to start a `tessera serve` that speaks HTTPS and point the harness's Server object at it."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Ca:
    """A self-signed certificate authority that issues server certificates for 127.0.0.1 / localhost."""

    def __init__(self, directory: Path, cn: str = "Tessera test CA"):
        self.dir = Path(directory)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = self.dir / f"ca-{self.cert.serial_number:x}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str) -> tuple[bytes, bytes, bytes]:
        """A server certificate for 127.0.0.1 and localhost: (cert PEM, key PEM, cert DER)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return (cert.public_bytes(serialization.Encoding.PEM), key_pem,
                cert.public_bytes(serialization.Encoding.DER))


def write_pair(directory: Path, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    """Writes (or replaces, each file atomically) server.crt / server.key in `directory`."""
    cert_path, key_path = Path(directory) / "server.crt", Path(directory) / "server.key"
    for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return cert_path, key_path


def tls_env(cert_path: Path, key_path: Path) -> dict[str, str]:
    return {"TESSERA_TLS__CERT_FILE": str(cert_path), "TESSERA_TLS__KEY_FILE": str(key_path)}


def use_https(server, ca_path: Path, timeout: float = 30.0) -> None:
    """Points a Server started with wait=False at https://, trusting `ca_path`, and waits for GET /healthz = 200 and
    the initial account, as the harness does over plain HTTP."""
    server.url = f"https://127.0.0.1:{server.port}"
    server.api_url = server.url + "/AuthServer/REST/U2F/U2FServer.aspx"
    server.soap_url = server.url + "/AuthServerWCFService/SurePassAuthServerWCFService.svc"
    server._http.verify = str(ca_path)
    server.wait_ready(timeout)
