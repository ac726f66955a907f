"""Build verified TLS client contexts from the `tls` config."""

from __future__ import annotations

import ssl

from prometheus_streams.config import Config, TLSConfig
from prometheus_streams.errors import ConfigError
from prometheus_streams.security.certs import (
    CertificateError,
    check_key_pair,
    check_validity,
    load_certificates,
)


def _prefix(tls: TLSConfig, where: str, key: str) -> str:
    if tls.scheme == "puppet":
        return f"{where}.tls (scheme puppet, ssl_dir {tls.ssl_dir}, identity {tls.identity})"
    return f"{where}.tls.{key}"


def check(tls: TLSConfig, where: str) -> list[str]:
    """Every problem with the CA, certificate and key files; empty when usable."""
    assert tls.ca_file and tls.cert_file and tls.key_file, "validated by config.load"
    problems = []
    hint = ""
    if tls.scheme == "puppet":
        hint = f"; enroll first: prometheus-streams enroll {tls.identity} --dir {tls.ssl_dir}"
    try:
        for ca in load_certificates(tls.ca_file, "CA certificate"):
            check_validity(ca, f"CA certificate {tls.ca_file}")
    except CertificateError as exc:
        problems.append(f"{_prefix(tls, where, 'ca')}: {exc}{hint}")
    try:
        check_key_pair(tls.cert_file, tls.key_file)
    except CertificateError as exc:
        key = "key" if str(exc).startswith("private key") else "cert"
        problems.append(f"{_prefix(tls, where, key)}: {exc}{hint}")
    return problems


def require_usable(config: Config, role: str) -> None:
    """ConfigError listing every TLS file problem of the stream `role` uses."""
    where = f"{role}_stream"
    stream = getattr(config, where, None)
    if stream is None or stream.tls is None:
        return
    problems = check(stream.tls, where)
    if problems:
        raise ConfigError([f"{config.path}: {p}" for p in problems])


def client_context(tls: TLSConfig, where: str) -> ssl.SSLContext:
    """A context that verifies the server (certificate and hostname) and presents ours."""
    problems = check(tls, where)
    if problems:
        raise ConfigError(problems)
    assert tls.ca_file and tls.cert_file and tls.key_file
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            [f"{where}.tls: {tls.cert_file} and {tls.key_file} cannot be used: {exc}"]
        ) from None
    return context


def explain(exc: BaseException, tls: TLSConfig | None) -> str | None:
    """A sentence an operator can act on for a TLS failure, or None if it is not one."""
    if tls is None or not isinstance(exc, ssl.SSLError):
        return None
    text = str(exc)
    reason = (getattr(exc, "reason", None) or "").upper()
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the NATS server's certificate was not accepted ({exc.verify_message}); "
            f"it must be issued by the CA in {tls.ca_file} for the host name in the URL"
        )
    if "ALERT" in reason:
        # The server ended the handshake: with `verify: true` that is our certificate.
        return (
            f"the NATS server refused our client certificate {tls.cert_file} ({text}); "
            "it is not issued by a CA the server trusts, or the server requires another one"
        )
    return None
