"""A throwaway certificate authority for tests, made with `cryptography` at test time.

Keys are EC P-256 (fast to make); nothing here is ever written outside the
test's tmp directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ONE_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PEM (PKCS8, unencrypted) of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    """A certificate with its key, and where they were written."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path


class TestCA:
    """A self-signed CA that issues server and client certificates into `directory`."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, directory: Path, name: str = "Test CA") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - ONE_DAY)
            .not_valid_after(_now() + 30 * ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(cert_pem(self.cert))

    def sign(
        self,
        public_key: ec.EllipticCurvePublicKey | x509.Certificate | object,
        common_name: str,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """A leaf certificate (serverAuth + clientAuth) for `public_key`."""
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or _now() - ONE_DAY)
            .not_valid_after(not_after or _now() + 10 * ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(
        self,
        name: str,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> Issued:
        """A new key and certificate, written to `<dir>/<name>.crt` and `<name>.key`."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.sign(key.public_key(), name, dns, ips, not_before, not_after)
        cert_file = self.dir / f"{name}.crt"
        key_file = self.dir / f"{name}.key"
        cert_file.write_bytes(cert_pem(cert))
        key_file.write_bytes(key_pem(key))
        key_file.chmod(0o600)
        return Issued(cert, key, cert_file, key_file)

    def server(self, name: str = "nats") -> Issued:
        """A server certificate for 127.0.0.1 and localhost."""
        return self.issue(name, dns=("localhost",), ips=("127.0.0.1",))


def nats_tls_block(ca_file: Path, cert_file: Path, key_file: Path, verify: bool = True) -> str:
    """The nats-server `tls {}` block: our certificate, and client certificates required."""
    return (
        "tls {\n"
        f'  cert_file: "{cert_file}"\n'
        f'  key_file: "{key_file}"\n'
        f'  ca_file: "{ca_file}"\n'
        f"  verify: {'true' if verify else 'false'}\n"
        "  timeout: 5\n"
        "}\n"
    )


def manual_tls(ca: TestCA, name: str) -> dict[str, str]:
    """A `tls` config section (scheme manual) with a certificate for `name` from `ca`."""
    issued = ca.issue(name)
    return {
        "scheme": "manual",
        "ca": str(ca.ca_file),
        "cert": str(issued.cert_file),
        "key": str(issued.key_file),
    }
