"""The `push_gateway` section: where and how the receiver pushes, HTTPS and credentials."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_streams.config.credentials import (
    file_path,
    has_secret,
    require_user_with_password,
    secret,
)
from prometheus_streams.config.model import PushGatewayConfig
from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import (
    VISIBLE_ASCII,
    as_bool,
    as_str,
    http_url,
    int_in,
    name_list,
    positive_duration,
)
from prometheus_streams.secret import Secret
from prometheus_streams.units import parse_duration

_PUSH_AUTH_KEYS = {
    "ca",
    "insecure_skip_verify",
    "username",
    "password",
    "password_file",
    "password_env",
    "bearer_token",
    "bearer_token_file",
    "bearer_token_env",
}
PUSH_KEYS = {
    "url",
    "publisher_label",
    "timeout",
    "concurrency",
    "breaker_failures",
    "breaker_cooldown",
    "stale_after",
    "stale_check_interval",
    "stale_publishers",
    *_PUSH_AUTH_KEYS,
}


def read_push_gateway(parent: Section) -> PushGatewayConfig | None:
    """The `push_gateway` section; None when absent or no mapping (with a problem)."""
    if not parent.given("push_gateway"):
        return None
    s = parent.mapping("push_gateway")
    if s is None:
        return None
    s.check_keys(PUSH_KEYS)
    if not s.given("url"):
        s.problem("url", "required: the Pushgateway base URL")
    url = s.get("url", http_url, "http://invalid").rstrip("/")
    url, url_auth = _url_credentials(s, url)
    return PushGatewayConfig(
        url=url,
        **{**_push_auth(s, url), **url_auth},
        publisher_label=s.get("publisher_label", as_bool, False),
        timeout=s.get("timeout", positive_duration, 10.0),
        concurrency=s.get("concurrency", int_in(1, 1024), 8),
        breaker_failures=s.get("breaker_failures", int_in(1, 10_000), 5),
        breaker_cooldown=s.get("breaker_cooldown", positive_duration, 30.0),
        stale_after=s.get("stale_after", parse_duration, 0.0),
        stale_check_interval=s.get("stale_check_interval", positive_duration, 60.0),
        stale_publishers=s.get("stale_publishers", name_list, ()),
    )


def _push_auth(s: Section, url: str) -> dict[str, Any]:
    """HTTPS and credentials for the Pushgateway, as PushGatewayConfig keyword arguments."""
    username = s.get("username", as_str, None)
    password = secret(s, "password")
    token = secret(s, "bearer_token")
    if token is not None and not VISIBLE_ASCII.fullmatch(token.reveal()):
        # It goes into the Authorization header as it is.
        s.problem(
            "bearer_token",
            f"the token from {token.source} must be visible ASCII without spaces (value not shown)",
        )
    has_password = has_secret(s, "password")
    has_token = has_secret(s, "bearer_token")
    if "username" in s and has_token:
        s.problem(None, "choose basic auth (username) or bearer_token, not both")
    require_user_with_password(s, "username", "or password_file, ...")
    skip_verify = s.get("insecure_skip_verify", as_bool, False)
    if skip_verify:
        s.warn(
            "insecure_skip_verify",
            "the Pushgateway's certificate is not checked: anyone in the path can read "
            "the credentials and the metrics",
        )
    ca = file_path(s, "ca", private=False)
    if ca is not None:
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            s.problem("ca", f"{ca} is not a PEM CA bundle: {exc}")
    if urlsplit(url).scheme == "http":
        if "ca" in s or skip_verify:
            s.problem("url", "ca and insecure_skip_verify need an https:// url")
        if has_password or has_token:
            s.warn("url", "credentials would travel over plain http; use https")
    return {
        "ca": ca,
        "insecure_skip_verify": skip_verify,
        "username": username,
        "password": password,
        "bearer_token": token,
    }


def _url_credentials(s: Section, url: str) -> tuple[str, dict[str, Any]]:
    """The URL without user info, and that user info as basic auth for every request.

    Go's HTTP client, which the original used, sends a URL's user info as basic
    auth, so a migrated config may hold it; kept in the URL it would be printed.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, host = parts.netloc.rpartition("@")
    bare = urlunsplit(parts._replace(netloc=host))
    if any(key in s for key in _PUSH_AUTH_KEYS - {"ca", "insecure_skip_verify"}):
        s.problem(
            "url",
            "holds credentials, and so do other push_gateway keys: give them once, "
            "as push_gateway.username with password_file",
        )
        return bare, {}
    s.warn(
        "url",
        "holds credentials: they are sent as basic auth and never shown; "
        "prefer push_gateway.username with password_file",
    )
    if parts.scheme == "http":
        s.warn("url", "credentials would travel over plain http; use https")
    user, _, password = userinfo.partition(":")
    return bare, {
        "username": unquote(user),
        "password": Secret(f"user info of {s.path('url')}", unquote(password)),
    }
