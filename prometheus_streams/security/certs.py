"""Read and check PEM certificates and keys before any TLS stack sees them."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


class CertificateError(Exception):
    """A certificate or key file that cannot be used; the message names the file."""


def read_bytes(path: str | Path, what: str) -> bytes:
    """The content of a file, or CertificateError saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise CertificateError(f"{what} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise CertificateError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None


def parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Every certificate in PEM data (a chain or bundle); at least one."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise CertificateError(f"{source}: no PEM certificate in it")
    return certs


def load_certificates(path: str | Path, what: str = "certificate") -> list[x509.Certificate]:
    """Every certificate of a PEM file; CertificateError naming the file otherwise."""
    return parse_certificates(read_bytes(path, what), f"{what} {path}")


def parse_private_key(data: bytes, source: str) -> PrivateKey:
    """The (unencrypted) private key of PEM data."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateError(
            f"{source}: the key is encrypted; a daemon needs an unencrypted key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{source}: no usable PEM private key in it") from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise CertificateError(f"{source}: unsupported key type {type(key).__name__}")
    return key


def load_private_key(path: str | Path, what: str = "private key") -> PrivateKey:
    """The private key of a PEM file; CertificateError naming the file otherwise."""
    return parse_private_key(read_bytes(path, what), f"{what} {path}")


def public_der(key: PrivateKey | x509.Certificate) -> bytes:
    """The DER SubjectPublicKeyInfo of a key or certificate, for comparing them."""
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True when the certificate certifies this private key."""
    return public_der(cert) == public_der(key)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA256 fingerprint as Puppet prints it: upper-case hex pairs joined by colons."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def normalize_fingerprint(text: str) -> str:
    """Accept `AB:CD...`, `abcd...` or `SHA256:AB:..`; ValueError when not 32 bytes of hex."""
    raw = text.strip()
    if raw.upper().startswith("SHA256"):
        raw = raw[6:].lstrip(":= ")
    digits = raw.replace(":", "").replace(" ", "").upper()
    if len(digits) != 64 or any(c not in "0123456789ABCDEF" for c in digits):
        raise ValueError(f"not a SHA256 fingerprint (64 hex digits): {text!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def check_validity(
    cert: x509.Certificate, source: str, now: datetime.datetime | None = None
) -> None:
    """CertificateError when the certificate is expired or not valid yet."""
    now = now or datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        raise CertificateError(
            f"{source}: certificate for {subject_name(cert)} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC; renew it"
        )
    if cert.not_valid_before_utc > now:
        raise CertificateError(
            f"{source}: certificate for {subject_name(cert)} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC (check the clock)"
        )


def subject_name(cert: x509.Certificate) -> str:
    """The certificate's CN, or its whole subject when it has no CN."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return cert.subject.rfc4514_string() or "(empty subject)"


def issued_by_any(cert: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    """True when one of `cas` signed this certificate."""
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def is_ca(cert: x509.Certificate) -> bool:
    """True when the certificate may sign others (basicConstraints CA:TRUE)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def check_key_pair(cert_file: str, key_file: str) -> tuple[x509.Certificate, PrivateKey]:
    """Load a certificate (first of its chain) and key, check they match and are valid now."""
    cert = load_certificates(cert_file, "certificate")[0]
    key = load_private_key(key_file)
    if not matches(cert, key):
        raise CertificateError(
            f"private key {key_file} does not match certificate {cert_file} "
            f"(issued to {subject_name(cert)}); use the key the certificate was made for"
        )
    check_validity(cert, f"certificate {cert_file}")
    return cert, key
