"""The `remote_write` list and `publisher_label`, in Prometheus' keys so users can paste theirs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from prometheus_streams.config.http_client import read_auth, read_tls
from prometheus_streams.config.model import (
    DEFAULT_PUBLISHER_LABEL,
    RemoteWriteConfig,
)
from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import (
    NAME_RE,
    as_str,
    http_url,
    int_in,
    positive_duration,
)
from prometheus_streams.units import parse_duration

RW_KEYS = {
    "url",
    "name",
    "headers",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "bearer_token_env",
    "tls_config",
    "remote_timeout",
    "queue_config",
    "protobuf_message",
    "stale_after",
    "partitions",
}
QUEUE_KEYS = {"max_samples_per_send", "batch_send_deadline", "min_backoff", "max_backoff"}

# Accepted so a pasted Prometheus entry loads; what they tune does not exist here.
_IGNORED_QUEUE_KEYS = {
    "capacity": "not used: scrapes wait in the JetStream stream, not in a memory queue",
    "max_shards": "not used: one receiver writes an output at a time, in order per series",
    "min_shards": "not used: one receiver writes an output at a time, in order per series",
    "retry_on_http_429": "not used: a 429 is always retried, honouring Retry-After",
    "sample_age_limit": "not used: max_age (top level) drops scrapes that are too old",
}
_IGNORED_KEYS = {
    "metadata_config": "not supported: no metric metadata is sent",
    "send_exemplars": "not supported: the text format carries no exemplars",
    "send_native_histograms": "not supported: the text format carries no native histograms",
    "proxy_url": "not supported: the receiver connects to the url directly",
    "no_proxy": "not supported: the receiver connects to the url directly",
    "proxy_from_environment": "not supported: the receiver connects to the url directly",
    "proxy_connect_header": "not supported: the receiver connects to the url directly",
    "follow_redirects": "not supported: a redirect is not followed (counted as an error)",
    "enable_http2": "not supported: requests go over HTTP/1.1",
    "round_robin_dns": "not supported: the url's host is resolved by the system",
}
# Refused: ignoring them would change what is sent (relabelling) or leave every
# request unauthenticated, where the user asked for a login.
_REFUSED_KEYS = {
    "write_relabel_configs": "not supported: relabel on the poller (jobs' targets) instead; "
    "ignoring it would send series it drops or renames",
    "sigv4": "not supported (AWS SigV4 signing); use basic_auth or authorization",
    "azuread": "not supported (Azure AD); use basic_auth or authorization",
    "oauth2": "not supported (OAuth 2.0); use basic_auth or authorization",
    "google_iam": "not supported (Google IAM); use basic_auth or authorization",
}
# Prometheus' reserved headers (prometheus/common): set by the sender itself or
# hop-by-hop; Authorization comes from basic_auth or authorization.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "host",
        "content-encoding",
        "content-length",
        "content-type",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "www-authenticate",
        "accept-encoding",
        "x-prometheus-remote-write-version",
        "x-prometheus-remote-read-version",
        "x-prometheus-scrape-timeout-seconds",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    }
)
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
OUTPUT_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_NAME_LENGTH = 64


def read_remote_write(parent: Section) -> tuple[RemoteWriteConfig, ...]:
    """The `remote_write` list; entries with problems are left out (the problems say why)."""
    if not parent.given("remote_write"):
        return ()
    if not isinstance(parent.raw("remote_write"), list):
        parent.problem("remote_write", "must be a list of destinations (- url: ...)")
        return ()
    outputs: list[RemoteWriteConfig] = []
    seen: dict[str, str] = {}
    for s in parent.entries("remote_write"):
        output = _read_one(s)
        if output is None:
            continue
        if output.name in seen:
            hint = "" if s.given("name") else " (the default from the url's host): set `name`"
            s.problem(
                "name",
                f"{output.name!r} is also the name of {seen[output.name]}{hint}; "
                "names must be unique",
            )
            continue
        seen[output.name] = s.path()
        outputs.append(output)
    return tuple(outputs)


def read_publisher_label(top: Section) -> str:
    """The top-level `publisher_label`: the label naming the poller on remote-written series."""
    value = top.raw("publisher_label")
    if value is None:
        return DEFAULT_PUBLISHER_LABEL
    if isinstance(value, bool):
        top.problem(
            "publisher_label",
            "the top-level key is a label name (default publisher); "
            "true/false belongs under push_gateway.publisher_label",
        )
        return DEFAULT_PUBLISHER_LABEL
    if not isinstance(value, str) or not _LABEL_NAME_RE.fullmatch(value):
        top.problem("publisher_label", f"not a valid label name: {value!r}")
        return DEFAULT_PUBLISHER_LABEL
    if value in ("job", "instance") or value.startswith("__"):
        top.problem("publisher_label", f"label {value!r} is reserved (job, instance, __*)")
        return DEFAULT_PUBLISHER_LABEL
    return value


def default_name(url: str) -> str:
    """The URL's host (host_port with a port), in the characters a consumer name allows."""
    parts = urlsplit(url)
    host = parts.hostname or "remote_write"
    if parts.port is not None:
        host = f"{host}_{parts.port}"
    return re.sub(r"[^A-Za-z0-9_-]", "_", host)[:MAX_NAME_LENGTH]


def _read_one(s: Section) -> RemoteWriteConfig | None:
    for key, reason in _REFUSED_KEYS.items():
        if key in s and not (key == "write_relabel_configs" and not s.raw(key)):
            s.problem(key, reason)
    s.check_keys(RW_KEYS | _REFUSED_KEYS.keys(), _IGNORED_KEYS)
    if not s.given("url"):
        s.problem("url", "required: the store's remote-write endpoint")
        return None
    problems = len(s.reader.problems)
    url = s.get("url", http_url, "")
    if url and "@" in urlsplit(url).netloc:
        s.problem("url", "holds credentials: give them as basic_auth (username, password_file)")
    name = _name(s, url)
    protobuf = s.raw("protobuf_message")
    if protobuf is not None and protobuf != "prometheus.WriteRequest":
        s.problem(
            "protobuf_message",
            f"only Remote-Write 1.0 (prometheus.WriteRequest) is spoken, got {protobuf!r}",
        )
    output = RemoteWriteConfig(
        url=url,
        name=name,
        headers=_headers(s),
        **read_auth(s, url),
        **read_tls(s, url),
        remote_timeout=s.get("remote_timeout", positive_duration, 30.0),
        stale_after=s.get("stale_after", parse_duration, 300.0),
        partitions=s.get("partitions", int_in(1, 64), 1),
        **_queue(s),
    )
    return output if len(s.reader.problems) == problems and url else None


def _name(s: Section, url: str) -> str:
    if not s.given("name"):
        return default_name(url) if url else ""
    name = s.get("name", as_str, "")
    if name and (len(name) > MAX_NAME_LENGTH or not OUTPUT_NAME_RE.fullmatch(name)):
        suggestion = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:MAX_NAME_LENGTH]
        s.problem(
            "name",
            f"must be 1-{MAX_NAME_LENGTH} of A-Z a-z 0-9 _ - (it names a NATS consumer "
            f"and a label value), got {name!r}; for example {suggestion!r}",
        )
    return name


def _headers(s: Section) -> tuple[tuple[str, str], ...]:
    h = s.mapping("headers")
    if h is None:
        return ()
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in h:
        if not _HEADER_NAME_RE.fullmatch(name):
            h.problem(name, f"not an HTTP header name: {name!r}")
            continue
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            where = (
                "use basic_auth or authorization"
                if lower == "authorization"
                else "the receiver sets it itself"
            )
            h.problem(name, f"reserved header, it must not be changed: {where}")
            continue
        if lower in seen:
            h.problem(name, "given twice (header names ignore case)")
            continue
        seen.add(lower)
        value = h.raw(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        # Never quote the value: some stores take an API key in a header.
        if not isinstance(value, str) or not value.strip():
            h.problem(name, f"must be a non-empty string, got {type(value).__name__}")
        elif not NAME_RE.fullmatch(value):
            h.problem(name, "must not contain control characters (value not shown)")
        else:
            headers.append((name, value))
    return tuple(headers)


def _queue(parent: Section) -> dict[str, Any]:
    if not parent.given("queue_config"):
        return {}
    s = parent.mapping("queue_config")
    if s is None:
        return {}
    s.check_keys(QUEUE_KEYS, _IGNORED_QUEUE_KEYS)
    low = s.get("min_backoff", positive_duration, 0.03)
    high = s.get("max_backoff", positive_duration, 5.0)
    if high < low:
        s.problem("max_backoff", f"{high:g}s is below min_backoff {low:g}s")
    return {
        "max_samples_per_send": s.get("max_samples_per_send", int_in(1, 1_000_000), 2000),
        "batch_send_deadline": s.get("batch_send_deadline", positive_duration, 5.0),
        "min_backoff": low,
        "max_backoff": high,
    }
