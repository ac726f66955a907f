"""Credentials and TLS of an HTTP client, in Prometheus' keys (basic_auth, authorization,
bearer_token, tls_config): read alike for remote_write entries, jobs and http_sd."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from prometheus_streams.config.credentials import file_path, secret
from prometheus_streams.config.model import TLS_VERSIONS
from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import VISIBLE_ASCII, as_bool, as_str, one_of
from prometheus_streams.secret import Secret, SecretSourceError, read_secret_file

BASIC_AUTH_KEYS = {"username", "username_file", "password", "password_file", "password_env"}
AUTHORIZATION_KEYS = {"type", "credentials", "credentials_file", "credentials_env"}
TLS_CONFIG_KEYS = {
    "ca_file",
    "cert_file",
    "key_file",
    "server_name",
    "insecure_skip_verify",
    "min_version",
    "max_version",
}
REFUSED_TLS_KEYS = {
    "ca": "inline PEM is not supported: give ca_file",
    "cert": "inline PEM is not supported: give cert_file",
    "key": "inline PEM is not supported: give key_file",
    "ca_ref": "not supported: give ca_file",
    "cert_ref": "not supported: give cert_file",
    "key_ref": "not supported: give key_file",
}


def read_auth(s: Section, url: str) -> dict[str, Any]:
    """Basic auth, or an Authorization scheme with credentials; at most one form."""
    forms = [k for k in ("basic_auth", "authorization", "bearer_token") if k in s]
    if "bearer_token" not in forms and any(
        k in s for k in ("bearer_token_file", "bearer_token_env")
    ):
        forms.append("bearer_token_file")
    if len(forms) > 1:
        s.problem(None, f"give one of basic_auth, authorization, bearer_token, not {forms}")
        return {}
    auth: dict[str, Any] = {}
    if "basic_auth" in s:
        auth = _basic_auth(s)
    elif "authorization" in s:
        auth = _authorization(s)
    elif forms:
        token = secret(s, "bearer_token")
        _check_token(s, "bearer_token", token)
        auth = {"bearer_token": token}
    if forms and urlsplit(url).scheme == "http":
        s.warn("url", "credentials would travel over plain http; use https")
    return auth


def _basic_auth(parent: Section) -> dict[str, Any]:
    s = parent.mapping("basic_auth")
    if s is None:
        return {}
    s.check_keys(BASIC_AUTH_KEYS)
    username = s.get("username", as_str, None)
    if s.given("username_file"):
        if username is not None:
            s.problem("username_file", "give only one of username, username_file")
        path = file_path(s, "username_file", private=False)
        if path is not None:
            try:
                username = read_secret_file(path)
            except SecretSourceError as exc:
                s.problem("username_file", str(exc))
    if username is None:
        s.problem("username", "required with basic_auth")
    if username is not None and ":" in username:
        s.problem("username", "must not contain ':' (basic auth joins user and password with it)")
    password = secret(s, "password")
    if password is None and not any(
        s.given(k) for k in ("password", "password_file", "password_env")
    ):
        s.problem("password", "required with basic_auth (or password_file)")
    return {"username": username, "password": password}


def _authorization(parent: Section) -> dict[str, Any]:
    s = parent.mapping("authorization")
    if s is None:
        return {}
    s.check_keys(AUTHORIZATION_KEYS)
    scheme = s.get("type", as_str, "Bearer")
    if scheme.strip().lower() == "basic":
        s.problem("type", 'cannot be "Basic": use basic_auth (username, password_file)')
    elif not VISIBLE_ASCII.fullmatch(scheme):
        s.problem("type", f"must be one word (an HTTP auth scheme), got {scheme!r}")
    credentials = secret(s, "credentials")
    if credentials is None and not any(
        s.given(k) for k in ("credentials", "credentials_file", "credentials_env")
    ):
        s.problem("credentials", "required with authorization (or credentials_file)")
    _check_token(s, "credentials", credentials)
    return {"bearer_token": credentials, "authorization_type": scheme}


def _check_token(s: Section, key: str, token: Secret | None) -> None:
    if token is not None and not VISIBLE_ASCII.fullmatch(token.reveal()):
        # It goes into the Authorization header as it is.
        s.problem(
            key,
            f"the value from {token.source} must be visible ASCII without spaces (value not shown)",
        )


def read_tls(parent: Section, url: str) -> dict[str, Any]:
    if not parent.given("tls_config"):
        return {}
    s = parent.mapping("tls_config")
    if s is None:
        return {}
    for refused, reason in REFUSED_TLS_KEYS.items():
        if refused in s:
            s.problem(refused, reason)
    s.check_keys(TLS_CONFIG_KEYS | REFUSED_TLS_KEYS.keys())
    if urlsplit(url).scheme == "http" and s.data:
        parent.problem("tls_config", "needs an https:// url")
    ca = file_path(s, "ca_file", private=False)
    if ca is not None:
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            s.problem("ca_file", f"{ca} is not a PEM CA bundle: {exc}")
    cert = file_path(s, "cert_file", private=False)
    key = file_path(s, "key_file")
    if s.given("cert_file") != s.given("key_file"):
        s.problem(
            "key_file" if s.given("cert_file") else "cert_file",
            "cert_file and key_file go together",
        )
    elif cert is not None and key is not None:
        try:
            ssl.create_default_context().load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            s.problem("cert_file", f"{cert} and {key} cannot be used together: {exc}")
    skip_verify = s.get("insecure_skip_verify", as_bool, False)
    if skip_verify:
        s.warn(
            "insecure_skip_verify",
            "the server's certificate is not checked: anyone in the path can read "
            "the credentials and the metrics",
        )
    versions = one_of(*TLS_VERSIONS)
    low: str | None = s.get("min_version", versions, None)
    high: str | None = s.get("max_version", versions, None)
    if low and high and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        s.problem("max_version", f"{high} is below min_version {low}")
    return {
        "ca": ca,
        "cert_file": cert,
        "key_file": key,
        "server_name": s.get("server_name", as_str, None),
        "insecure_skip_verify": skip_verify,
        "min_version": low,
        "max_version": high,
    }
