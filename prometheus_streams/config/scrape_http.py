"""A job's HTTP keys (params, auth, TLS, proxy) and its http_sd and dns_sd discovery.

Named and read as Prometheus' scrape_config reads them, so `jobs:` and a
pasted `scrape_configs:` fill the same `Job` fields.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from prometheus_streams.config.http_client import read_auth, read_tls
from prometheus_streams.config.model import (
    DNSSD,
    HTTPSD,
    Authorization,
    BasicAuth,
    HTTPTLSConfig,
    Job,
)
from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import as_bool, as_str, http_url, int_in, positive_duration

# The keys a job gains here, beside those of config/jobs.py.
HTTP_JOB_KEYS = {
    "params",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "bearer_token_env",
    "tls_config",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
    "http_sd_configs",
    "dns_sd_configs",
}
HTTP_SD_KEYS = {
    "url",
    "refresh_interval",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "bearer_token_env",
    "tls_config",
    "proxy_url",
    "follow_redirects",
    "enable_http2",
}
DNS_SD_KEYS = {"names", "type", "port", "refresh_interval", "nameserver"}
DNS_TYPES = ("SRV", "A", "AAAA")
# A DNS name: dot-separated labels of letters, digits, '-' and '_' (SRV's _service._proto).
_DNS_NAME_RE = re.compile(r"(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+")


def read_job_http(s: Section) -> dict[str, Any]:
    """The job's params, basic_auth, authorization, tls_config, proxy_url, follow_redirects."""
    fields = _client(s)
    fields["params"] = _params(s)
    return fields


def describe_client(settings: Job | HTTPSD) -> str:
    """How a job or an http_sd endpoint authenticates, never the secret."""
    methods = []
    if settings.basic_auth is not None:
        password = settings.basic_auth.password
        source = password.source if password else "nowhere (empty)"
        methods.append(f"basic auth as {settings.basic_auth.username} with password from {source}")
    elif settings.authorization is not None:
        auth = settings.authorization
        methods.append(f"{auth.type} credentials from {auth.credentials.source}")
    if settings.tls_config is not None and settings.tls_config.cert_file is not None:
        methods.append(f"client certificate {settings.tls_config.cert_file}")
    return ", ".join(methods) or "none"


def url_credentials_clash(job: dict[str, Any], url: str) -> bool:
    """Whether a target URL holds user info while the job sets basic_auth or authorization."""
    has_auth = job.get("basic_auth") is not None or job.get("authorization") is not None
    return has_auth and "@" in urlsplit(url).netloc


def read_http_sd(job: Section) -> tuple[HTTPSD, ...]:
    """The `http_sd_configs` list."""
    if not isinstance(job.raw("http_sd_configs"), list):
        job.problem("http_sd_configs", "must be a list of {url, refresh_interval, ...}")
        return ()
    result = []
    for s in job.entries("http_sd_configs"):
        s.check_keys(HTTP_SD_KEYS)
        if not s.given("url"):
            s.problem("url", "required: where the target groups are fetched (JSON)")
            continue
        url = s.get("url", http_url, "")
        if not url:
            continue
        if "@" in urlsplit(url).netloc:
            s.problem("url", "holds credentials: give them as basic_auth (username, password_file)")
            continue
        result.append(
            HTTPSD(
                url=url,
                refresh_interval=s.get("refresh_interval", positive_duration, 60.0),
                **_client(s, url),
            )
        )
    return tuple(result)


def read_dns_sd(job: Section) -> tuple[DNSSD, ...]:
    """The `dns_sd_configs` list."""
    if not isinstance(job.raw("dns_sd_configs"), list):
        job.problem("dns_sd_configs", "must be a list of {names, type, port}")
        return ()
    result = []
    for s in job.entries("dns_sd_configs"):
        s.check_keys(DNS_SD_KEYS)
        names = s.raw("names")
        if not isinstance(names, list) or not names:
            s.problem("names", "must be a non-empty list of DNS names")
            continue
        bad = [n for n in names if not isinstance(n, str) or not _DNS_NAME_RE.fullmatch(n)]
        if bad:
            s.problem("names", f"not DNS names: {bad!r}")
            continue
        kind = s.get("type", _dns_type, "SRV")
        port = s.get("port", int_in(1, 65535), 0)
        if kind != "SRV" and not port:
            s.problem("port", f"required for type {kind} (the records carry no port)")
            continue
        result.append(
            DNSSD(
                names=tuple(n.rstrip(".") for n in names),
                type=kind,
                port=port,
                refresh_interval=s.get("refresh_interval", positive_duration, 30.0),
                nameserver=s.get("nameserver", _nameserver, None),
            )
        )
    return tuple(result)


def _dns_type(value: object) -> str:
    text = as_str(value).upper()
    if text not in DNS_TYPES:
        raise ValueError(f"must be one of {', '.join(DNS_TYPES)}, got {value!r}")
    return text


def _nameserver(value: object) -> str:
    """A DNS server as host:port ([v6]:port); port 53 when left out."""
    text = as_str(value)
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port or 53
    except ValueError:
        port = 0
    if not parts.hostname or not port or parts.path or "@" in text:
        raise ValueError(f"must be host:port of a DNS server, got {text!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def _client(s: Section, url: str = "") -> dict[str, Any]:
    """Auth, TLS, proxy and redirects, shared by a job and an http_sd endpoint."""
    auth = read_auth(s, url)
    basic_auth = authorization = None
    if auth.get("username") is not None:
        basic_auth = BasicAuth(auth["username"], auth.get("password"))
    elif auth.get("bearer_token") is not None:
        authorization = Authorization(
            auth["bearer_token"], auth.get("authorization_type", "Bearer")
        )
    tls = read_tls(s, url)
    tls_config = None
    if tls:
        ca_file = tls.pop("ca")
        tls_config = HTTPTLSConfig(ca_file=ca_file, **tls)
    if "enable_http2" in s:
        s.warn("enable_http2", "ignored: requests go over HTTP/1.1")
    return {
        "basic_auth": basic_auth,
        "authorization": authorization,
        "tls_config": tls_config,
        "proxy_url": s.get("proxy_url", _proxy_url, None),
        "follow_redirects": s.get("follow_redirects", as_bool, True),
    }


def _proxy_url(value: object) -> str:
    url = http_url(value)
    if urlsplit(url).scheme != "http":
        # aiohttp speaks to proxies over plain HTTP only (CONNECT for https targets).
        raise ValueError("must be an http:// proxy (https:// proxies are not supported)")
    if "@" in urlsplit(url).netloc:
        # Errors quote the proxy's URL; a password there would be shown.
        raise ValueError("must not hold credentials (proxy authentication is not supported)")
    return url


def _params(s: Section) -> tuple[tuple[str, tuple[str, ...]], ...]:
    p = s.mapping("params") if s.given("params") else None
    if p is None:
        return ()
    params = []
    for name in p:
        values = p.raw(name)
        if not isinstance(values, list) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in values
        ):
            p.problem(name, "must be a list of strings (Prometheus: `name: [value, ...]`)")
            continue
        params.append((str(name), tuple(str(v) for v in values)))
    return tuple(params)
