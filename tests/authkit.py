"""Credentials made at test time: nkeys, NATS JWTs and creds files, a CA and certificates.

Nothing here is committed key material: every key is generated in the test's
tmp dir. The JWT encoder covers only what nats-server needs to trust an
operator, an account (with JetStream) and a user.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import nkeys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from servers import Pushgateway

# --------------------------------------------------------------------------- #
# nkeys and JWTs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class NKey:
    """A generated nkey: seed (secret) and public key, both as text."""

    seed: str
    public: str

    def sign(self, data: bytes) -> bytes:
        pair = nkeys.from_seed(bytearray(self.seed.encode()))
        signature: bytes = pair.sign(data)
        return signature


def new_nkey(kind: str) -> NKey:
    """A fresh nkey of kind operator, account or user."""
    prefix = {
        "operator": nkeys.PREFIX_BYTE_OPERATOR,
        "account": nkeys.PREFIX_BYTE_ACCOUNT,
        "user": nkeys.PREFIX_BYTE_USER,
    }[kind]
    seed = nkeys.encode_seed(os.urandom(32), prefix).decode()
    public = nkeys.from_seed(bytearray(seed.encode())).public_key.decode()
    return NKey(seed, public)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(issuer: NKey, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS v2 JWT (ed25519-nkey) with `nats` claims, signed by `issuer`."""
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    # jti: a hash of the claims, as the Go library makes it.
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = issuer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{_b64(signature)}"


@dataclass(frozen=True)
class OperatorSetup:
    """An operator, one account with JetStream, and a system account, for nats-server."""

    operator: NKey
    account: NKey
    system: NKey
    operator_jwt: str
    account_jwt: str
    system_jwt: str

    def server_config(self) -> str:
        """nats-server config text trusting the operator, accounts preloaded in memory."""
        return (
            f"operator: {self.operator_jwt}\n"
            f"system_account: {self.system.public}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f"  {self.account.public}: {self.account_jwt}\n"
            f"  {self.system.public}: {self.system_jwt}\n"
            "}\n"
        )

    def user_creds(self, path: Path, name: str) -> Path:
        """Write a creds file for a new user of the account."""
        user = new_nkey("user")
        user_jwt = encode_jwt(
            self.account,
            user.public,
            name,
            {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
        )
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed}\n"
            "------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path


def operator_setup() -> OperatorSetup:
    """Keys and JWTs for an operator-mode nats-server with JetStream in one account."""
    operator, account, system = new_nkey("operator"), new_nkey("account"), new_nkey("account")
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1}
    unlimited |= {"wildcards": True, "conn": -1, "leaf": -1}
    jetstream = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    return OperatorSetup(
        operator=operator,
        account=account,
        system=system,
        operator_jwt=encode_jwt(operator, operator.public, "test-operator", {"type": "operator"}),
        account_jwt=encode_jwt(
            operator,
            account.public,
            "metrics",
            {"type": "account", "limits": {**unlimited, **jetstream}},
        ),
        system_jwt=encode_jwt(
            operator, system.public, "SYS", {"type": "account", "limits": unlimited}
        ),
    )


# --------------------------------------------------------------------------- #
# a test CA and certificates
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class CertFiles:
    """PEM files of a certificate and its key."""

    cert: Path
    key: Path


class TestCA:
    """A throwaway CA issuing server certificates for 127.0.0.1."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "Test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue_server(self, name: str = "localhost") -> CertFiles:
        """A server certificate for `name`, localhost and 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(name),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        files = CertFiles(self.directory / f"{name}.pem", self.directory / f"{name}-key.pem")
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files.key.chmod(0o600)
        return files


# --------------------------------------------------------------------------- #
# a Pushgateway behind TLS and basic auth
# --------------------------------------------------------------------------- #


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash as exporter-toolkit's basic_auth_users expects (cost 4: tests only)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


class SecurePushgateway(Pushgateway):
    """A real Pushgateway started with --web.config.file: HTTPS and basic auth."""

    def __init__(self, tmp_dir: Path, ca: TestCA, users: dict[str, str]) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        server = ca.issue_server("pushgateway")
        web_config = tmp_dir / "web-config.yml"
        lines = [
            "tls_server_config:",
            f"  cert_file: {server.cert}",
            f"  key_file: {server.key}",
        ]
        if users:
            lines.append("basic_auth_users:")
            lines += [f"  {user}: '{bcrypt_hash(pw)}'" for user, pw in users.items()]
        web_config.write_text("\n".join(lines) + "\n")
        super().__init__(tmp_dir, [f"--web.config.file={web_config}"])
        self._context = ssl.create_default_context(cafile=str(ca.ca_file))
        self._auth = ""
        if users:
            user, password = next(iter(users.items()))
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _https_get(self, path: str) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - https to our own loopback server
            f"{self.url}{path}", headers={"Authorization": self._auth} if self._auth else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=self._context) as resp:  # noqa: S310
                status: int = resp.status
                body: bytes = resp.read()
                return status, body
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _ready(self) -> bool:
        try:
            return self._https_get("/-/ready")[0] == 200
        except OSError:
            return False

    def _get(self, path: str) -> bytes:
        status, body = self._https_get(path)
        if status != 200:
            raise AssertionError(f"GET {path} -> {status}: {body[:500]!r}")
        return body

    def status_without_credentials(self, path: str = "/metrics") -> int:
        """The status a client without credentials gets (401 when auth is on)."""
        saved, self._auth = self._auth, ""
        try:
            return self._https_get(path)[0]
        finally:
            self._auth = saved
