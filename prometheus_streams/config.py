"""Load, validate and resolve the YAML configuration into immutable objects."""

from __future__ import annotations

import dataclasses
import difflib
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from prometheus_streams.errors import ConfigError
from prometheus_streams.secret import (
    Secret,
    SecretSourceError,
    read_private_file,
    read_secret_env,
    read_secret_file,
    readable_by_others,
    redact_url,
)
from prometheus_streams.units import parse_duration, parse_size
from prometheus_streams.wire import MAX_LABELS, label_name_problem

T = TypeVar("T")

SELF_JOB = "prometheus_streams"
DEFAULT_SCRAPE_INTERVAL = 60.0
DEFAULT_SCRAPE_TIMEOUT = 10.0
DEFAULT_BODY_SIZE_LIMIT = 32 * 1024 * 1024
DEFAULT_MAX_LINE_LENGTH = 64 * 1024
DEFAULT_MAX_LABEL_COUNT = 128
ROLES = ("poller", "receiver")

# Keys of the original (NATS Streaming) config that mean nothing on JetStream.
_OBSOLETE_STREAM_KEYS = {
    "cluster_id": "NATS Streaming cluster ids do not exist in JetStream",
}
_OBSOLETE_TLS_KEYS = {"cache": "only the Choria backplane used a certificate cache"}
_NAME_RE = re.compile(r"[^\x00-\x1f\x7f]+")
_STREAM_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_TOPIC_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


@dataclass(frozen=True)
class TLSConfig:
    """How to secure a NATS connection."""

    scheme: str
    identity: str
    ssl_dir: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def ca_file(self) -> str | None:
        """The CA bundle, from `ca` or the Puppet ssldir."""
        if self.scheme == "puppet" and self.ssl_dir:
            return str(Path(self.ssl_dir) / "certs" / "ca.pem")
        return self.ca

    @property
    def cert_file(self) -> str | None:
        """The client certificate, from `cert` or the Puppet ssldir."""
        if self.scheme == "puppet" and self.ssl_dir:
            return str(Path(self.ssl_dir) / "certs" / f"{self.identity}.pem")
        return self.cert

    @property
    def key_file(self) -> str | None:
        """The client key, from `key` or the Puppet ssldir."""
        if self.scheme == "puppet" and self.ssl_dir:
            return str(Path(self.ssl_dir) / "private_keys" / f"{self.identity}.pem")
        return self.key


@dataclass(frozen=True)
class NatsAuth:
    """How a NATS connection proves who it is: exactly one method; secrets never shown."""

    credentials_file: str | None = None
    nkey_seed_file: str | None = None
    user: str | None = None
    password: Secret | None = None
    token: Secret | None = None

    def describe(self) -> str:
        """The method and where its secret comes from, never the secret."""
        if self.credentials_file:
            return f"credentials file {self.credentials_file}"
        if self.nkey_seed_file:
            return f"nkey seed file {self.nkey_seed_file}"
        if self.user is not None:
            source = self.password.source if self.password else "nowhere"
            return f"user {self.user} with password from {source}"
        if self.token is not None:
            return f"token from {self.token.source}"
        return "none"


@dataclass(frozen=True)
class StreamConfig:
    """A NATS connection plus the JetStream stream and consumer it uses."""

    urls: tuple[str, ...]
    topic: str
    stream: str
    client_id: str
    durable: str
    replicas: int = 1
    storage: str = "file"
    stream_max_age: float = 600.0
    stream_max_bytes: int = 1024**3
    max_msgs_per_subject: int = 1
    fetch_batch: int = 24
    ack_wait: float = 30.0
    tls: TLSConfig | None = None
    auth: NatsAuth | None = None

    @property
    def subjects(self) -> str:
        """The subject filter covering every message of this topic."""
        return f"{self.topic}.>"


@dataclass(frozen=True)
class Target:
    """One scrape target of a job; `labels` become extra grouping labels centrally."""

    name: str
    url: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FileSD:
    """Prometheus file-based discovery: target groups read from files."""

    files: tuple[str, ...]
    refresh_interval: float = 300.0


@dataclass(frozen=True)
class Job:
    """A named set of targets scraped on one schedule."""

    name: str
    targets: tuple[Target, ...]
    scrape_interval: float
    scrape_timeout: float
    body_size_limit: int
    scheme: str = "http"
    metrics_path: str = "/metrics"
    file_sd: tuple[FileSD, ...] = ()


@dataclass(frozen=True)
class PushGatewayConfig:
    """Where and how the receiver pushes."""

    url: str
    publisher_label: bool = False
    timeout: float = 10.0
    concurrency: int = 8
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    stale_after: float = 0.0
    stale_check_interval: float = 60.0
    # Publishers whose stale groups are ours even when the stream holds none of their subjects.
    stale_publishers: tuple[str, ...] = ()
    ca: str | None = None
    insecure_skip_verify: bool = False
    username: str | None = None
    password: Secret | None = None
    bearer_token: Secret | None = None

    def describe_auth(self) -> str:
        """How the receiver authenticates, never the secret."""
        if self.username is not None:
            source = self.password.source if self.password else "nowhere"
            return f"basic auth as {self.username} with password from {source}"
        if self.bearer_token is not None:
            return f"bearer token from {self.bearer_token.source}"
        return "none"


@dataclass(frozen=True)
class ManagementConfig:
    """Pause/resume/status over NATS and on the local HTTP port."""

    enabled: bool = True
    subject_prefix: str = "prometheus_streams.management"
    brokers: tuple[str, ...] = ()
    tls: TLSConfig | None = None
    http_remote: bool = False


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; never changed after loading."""

    path: str
    identity: str
    verbose: bool = False
    debug: bool = False
    logfile: str | None = None
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT
    max_age: float = 0.0
    monitor_port: int = 0
    monitor_address: str = "0.0.0.0"  # noqa: S104 - Prometheus must reach it
    body_size_limit: int = DEFAULT_BODY_SIZE_LIMIT
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    max_label_count: int = DEFAULT_MAX_LABEL_COUNT
    shutdown_grace: float = 10.0
    jobs: tuple[Job, ...] = ()
    poller_stream: StreamConfig | None = None
    receiver_stream: StreamConfig | None = None
    push_gateway: PushGatewayConfig | None = None
    tls: TLSConfig | None = None
    management: ManagementConfig = ManagementConfig()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def problems_for(self, role: str) -> list[str]:
        """What keeps this config from running `role`; empty when fit."""
        problems = []
        if role == "poller":
            if self.poller_stream is None:
                problems.append(f"{self.path}: poller_stream: required by the poller")
            if not self.jobs:
                problems.append(f"{self.path}: jobs: the poller needs at least one job")
        elif role == "receiver":
            if self.receiver_stream is None:
                problems.append(f"{self.path}: receiver_stream: required by the receiver")
            if self.push_gateway is None:
                problems.append(f"{self.path}: push_gateway: required by the receiver")
        return problems

    def require(self, role: str) -> None:
        """Raise ConfigError unless the config can run `role`."""
        problems = self.problems_for(role)
        if problems:
            raise ConfigError(problems)


class _Reader:
    """Walks raw YAML, records every problem with its key path, never raises."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.path}: {key}: {message}")

    def mapping(self, value: object, key: str) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"must be a mapping, got {type(value).__name__}")
            return None
        bad = [k for k in value if not isinstance(k, str)]
        for k in bad:
            self.problem(key, f"keys must be strings, got {k!r}")
        return {k: v for k, v in value.items() if isinstance(k, str)}

    def check_keys(
        self,
        raw: Mapping[str, Any],
        prefix: str,
        known: set[str],
        obsolete: Mapping[str, str] | None = None,
    ) -> None:
        obsolete = obsolete or {}
        for key in raw:
            if key in known:
                continue
            where = f"{prefix}{key}"
            if key in obsolete:
                self.warn(where, f"ignored: {obsolete[key]}")
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            self.problem(where, f"unknown key{hint}")

    def get(
        self,
        raw: Mapping[str, Any],
        key: str,
        where: str,
        convert: Callable[[object], T],
        default: T,
    ) -> T:
        if key not in raw or raw[key] is None:
            return default
        try:
            return convert(raw[key])
        except (ValueError, TypeError) as exc:
            self.problem(where, str(exc))
            return default


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"must be true or false, got {value!r}")


def _as_str(value: object) -> str:
    if isinstance(value, str) and value.strip():
        if not _NAME_RE.fullmatch(value):
            raise ValueError(f"must not contain control characters: {value!r}")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"must be a non-empty string, got {value!r}")


def _as_name(value: object) -> str:
    """A name that travels in subjects and headers: no blanks around it (NATS strips them)."""
    text = _as_str(value)
    if text != text.strip():
        raise ValueError(f"must not start or end with blanks: {text!r}")
    return text


def _size_in(low: int, high: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"must be between {low} and {high} bytes, got {size}")
        return size

    return convert


def _int_in(low: int, high: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def _one_of(*choices: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return convert


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _http_url(value: object) -> str:
    text = _as_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {redact_url(text)!r}")
    try:
        parts.port  # noqa: B018 - property raises on a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in URL {redact_url(text)!r}: {exc}") from None
    return text


def _nats_urls(value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ValueError(f"must be a URL, a comma-separated list or a list, got {value!r}")
    urls = []
    for item in items:
        text = _as_str(item)
        if "://" not in text:
            text = f"nats://{text}"
        parts = urlsplit(text)
        if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
            raise ValueError(f"not a NATS URL: {redact_url(text)!r}")
        urls.append(text)
    if not urls:
        raise ValueError("needs at least one URL")
    return tuple(urls)


def _name_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of names, got {value!r}")
    names = []
    for i, item in enumerate(value):
        try:
            names.append(_as_name(item))
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None
    return tuple(names)


def _url_path(value: object) -> str:
    text = _as_str(value)
    if not text.startswith("/") or any(c in text for c in " ?#"):
        raise ValueError(f"must be a URL path starting with /: {text!r}")
    return text


def default_instance_name(url: str) -> str:
    """The `host:port` Prometheus would use as the instance label."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _stream_name(topic: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic).upper()


_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _secret_text(value: object) -> str:
    # Unlike _as_str, never echo the value: it is a password or a token.
    if isinstance(value, str) and value.strip():
        if not _NAME_RE.fullmatch(value):
            raise ValueError("must not contain control characters (value not shown)")
        return value
    raise ValueError(f"must be a non-empty string, got {type(value).__name__}")


def _file_path(
    r: _Reader, raw: Mapping[str, Any], key: str, where: str, private: bool = True
) -> str | None:
    """A path to a file that must be readable; warn if a private one is world-readable."""
    path = r.get(raw, key, where, _as_str, None)
    if path is None:
        return None
    if not Path(path).is_file():
        r.problem(where, f"cannot read {path}: no such file")
        return None
    if private and readable_by_others(path):
        r.warn(where, f"{path} is readable by every user; chmod o-r it")
    return path


def _secret(r: _Reader, raw: Mapping[str, Any], key: str, where: str) -> Secret | None:
    """A secret given inline as `key`, in a file as `key_file` or in `key_env`; at most one."""
    given = [k for k in (key, f"{key}_file", f"{key}_env") if raw.get(k) is not None]
    if len(given) > 1:
        r.problem(f"{where}{given[1]}", f"give only one of {', '.join(given)}")
        return None
    if not given:
        return None
    name = given[0]
    if name == key:
        value = r.get(raw, key, f"{where}{key}", _secret_text, "")
        return Secret("inline config", value) if value else None
    if name.endswith("_file"):
        path = _file_path(r, raw, name, f"{where}{name}")
        if path is None:
            return None
        try:
            return Secret(f"file {path}", read_secret_file(path))
        except SecretSourceError as exc:
            r.problem(f"{where}{name}", str(exc))
            return None
    env = r.get(raw, name, f"{where}{name}", _as_str, "")
    if not env:
        return None
    try:
        return Secret(f"environment variable {env}", read_secret_env(env))
    except SecretSourceError as exc:
        r.problem(f"{where}{name}", str(exc))
        return None


_NATS_AUTH_KEYS = {
    "credentials_file",
    "nkey_seed_file",
    "user",
    "password",
    "password_file",
    "password_env",
    "token",
    "token_file",
    "token_env",
}


def _check_creds_file(r: _Reader, path: str, where: str) -> None:
    try:
        text = read_private_file(path)
    except SecretSourceError as exc:
        r.problem(where, str(exc))
        return
    for marker in ("BEGIN NATS USER JWT", "BEGIN USER NKEY SEED"):
        if marker not in text:
            r.problem(where, f"{path} is not a NATS credentials file: no {marker} block")


def _check_nkey_seed_file(r: _Reader, path: str, where: str) -> None:
    import nkeys  # nats-py's own dependency for nkey auth

    try:
        seed = read_secret_file(path)
    except SecretSourceError as exc:
        r.problem(where, str(exc))
        return
    try:
        nkeys.from_seed(bytearray(seed.encode())).wipe()
    except Exception:  # nkeys raises bare and assorted errors; none may echo the seed
        r.problem(where, f"{path} does not hold a valid nkey seed")
        return
    if not seed.startswith("SU"):
        r.problem(where, f"{path} holds an nkey seed, but not a user seed (SU...)")


def _nats_auth(r: _Reader, data: Mapping[str, Any], where: str) -> NatsAuth | None:
    prefix = f"{where}."
    creds = _file_path(r, data, "credentials_file", f"{prefix}credentials_file")
    if creds is not None:
        _check_creds_file(r, creds, f"{prefix}credentials_file")
    seed = _file_path(r, data, "nkey_seed_file", f"{prefix}nkey_seed_file")
    if seed is not None:
        _check_nkey_seed_file(r, seed, f"{prefix}nkey_seed_file")
    user = r.get(data, "user", f"{prefix}user", _as_str, None)
    password = _secret(r, data, "password", prefix)
    token = _secret(r, data, "token", prefix)
    methods = [
        name
        for name, present in (
            ("credentials_file", "credentials_file" in data),
            ("nkey_seed_file", "nkey_seed_file" in data),
            ("user/password", "user" in data),
            ("token", any(f"token{s}" in data for s in ("", "_file", "_env"))),
        )
        if present
    ]
    if len(methods) > 1:
        r.problem(where, f"choose one NATS auth method, got {' and '.join(methods)}")
    has_password = any(f"password{s}" in data for s in ("", "_file", "_env"))
    if has_password and "user" not in data:
        r.problem(f"{prefix}user", "required with a password")
    if "user" in data and not has_password:
        r.problem(f"{prefix}password", "required with user (or password_file, password_env)")
    if not methods:
        return None
    return NatsAuth(
        credentials_file=creds,
        nkey_seed_file=seed,
        user=user,
        password=password,
        token=token,
    )


_TLS_KEYS = {"scheme", "identity", "ssl_dir", "ca", "cert", "key"}
_CERTNAME_RE = re.compile(r"[a-z0-9_][a-z0-9._-]*")


def _tls(r: _Reader, raw: object, where: str, identity: str) -> TLSConfig | None:
    data = r.mapping(raw, where)
    if data is None:
        return None
    r.check_keys(data, f"{where}.", _TLS_KEYS, _OBSOLETE_TLS_KEYS)
    scheme = r.get(data, "scheme", f"{where}.scheme", _one_of("manual", "file", "puppet"), "")
    if not scheme:
        if data.get("scheme") is None:
            r.problem(f"{where}.scheme", "required: manual, file or puppet")
        return None
    scheme = "manual" if scheme == "file" else scheme
    if scheme == "puppet":
        # Puppet certificate names are lower case; a host's FQDN may not be.
        identity = identity.lower()
    tls = TLSConfig(
        scheme=scheme,
        identity=r.get(data, "identity", f"{where}.identity", _as_str, identity),
        ssl_dir=r.get(data, "ssl_dir", f"{where}.ssl_dir", _as_str, None),
        ca=r.get(data, "ca", f"{where}.ca", _as_str, None),
        cert=r.get(data, "cert", f"{where}.cert", _as_str, None),
        key=r.get(data, "key", f"{where}.key", _as_str, None),
    )
    if scheme == "puppet":
        if not tls.ssl_dir:
            r.problem(f"{where}.ssl_dir", "required with scheme: puppet")
        for key in ("ca", "cert", "key"):
            if getattr(tls, key) is not None:
                r.problem(f"{where}.{key}", "not used with scheme: puppet (ssl_dir has them)")
        # The identity names files under ssl_dir: no path separators, Puppet's rules.
        if not _CERTNAME_RE.fullmatch(tls.identity):
            r.problem(
                f"{where}.identity",
                f"not a Puppet certificate name (lower case, no '/'): {tls.identity!r}",
            )
    if scheme == "manual":
        if tls.ssl_dir is not None:
            r.problem(f"{where}.ssl_dir", "only used with scheme: puppet")
        for key in ("ca", "cert", "key"):
            if getattr(tls, key) is None:
                r.problem(f"{where}.{key}", "required with scheme: manual")
    return tls


def describe_tls(tls: TLSConfig | None) -> dict[str, Any] | None:
    """The TLS settings and the files they resolve to."""
    if tls is None:
        return None
    return {
        "scheme": tls.scheme,
        "identity": tls.identity,
        "ca": tls.ca_file,
        "cert": tls.cert_file,
        "key": tls.key_file,
    }


_STREAM_KEYS = {
    "urls",
    "topic",
    "client_id",
    "tls",
    "stream",
    "replicas",
    "storage",
    "stream_max_age",
    "stream_max_bytes",
    "max_msgs_per_subject",
    "durable",
    "fetch_batch",
    "ack_wait",
    *_NATS_AUTH_KEYS,
}


def _stream(
    r: _Reader, raw: object, where: str, identity: str, inherited: TLSConfig | None
) -> StreamConfig | None:
    data = r.mapping(raw, where)
    if data is None:
        return None
    r.check_keys(data, f"{where}.", _STREAM_KEYS, _OBSOLETE_STREAM_KEYS)
    urls: tuple[str, ...] = r.get(data, "urls", f"{where}.urls", _nats_urls, ())
    if data.get("urls") is None:
        r.problem(f"{where}.urls", "required: the NATS server URL(s)")
    topic = r.get(data, "topic", f"{where}.topic", _as_str, "prometheus")
    if not _TOPIC_RE.fullmatch(topic):
        r.problem(f"{where}.topic", f"must be dot-separated [A-Za-z0-9_-] tokens: {topic!r}")
    client_id = r.get(data, "client_id", f"{where}.client_id", _as_str, "prometheus_streams")
    durable = r.get(data, "durable", f"{where}.durable", _as_str, client_id)
    durable = re.sub(r"[^A-Za-z0-9_-]", "_", durable)
    stream = r.get(data, "stream", f"{where}.stream", _as_str, _stream_name(topic))
    if not _STREAM_NAME_RE.fullmatch(stream):
        r.problem(f"{where}.stream", f"must match [A-Za-z0-9_-]+: {stream!r}")
    tls = _tls(r, data["tls"], f"{where}.tls", identity) if "tls" in data else inherited
    return StreamConfig(
        urls=urls,
        topic=topic,
        stream=stream,
        client_id=client_id,
        durable=durable,
        replicas=r.get(data, "replicas", f"{where}.replicas", _int_in(1, 5), 1),
        storage=r.get(data, "storage", f"{where}.storage", _one_of("file", "memory"), "file"),
        stream_max_age=r.get(
            data, "stream_max_age", f"{where}.stream_max_age", _positive_duration, 600.0
        ),
        stream_max_bytes=r.get(
            data, "stream_max_bytes", f"{where}.stream_max_bytes", parse_size, 1024**3
        ),
        max_msgs_per_subject=r.get(
            data,
            "max_msgs_per_subject",
            f"{where}.max_msgs_per_subject",
            _int_in(1, 1_000_000),
            1,
        ),
        fetch_batch=r.get(data, "fetch_batch", f"{where}.fetch_batch", _int_in(1, 10_000), 24),
        ack_wait=r.get(data, "ack_wait", f"{where}.ack_wait", _positive_duration, 30.0),
        tls=tls,
        auth=_nats_auth(r, data, where),
    )


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
_PUSH_KEYS = {
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


def _push_auth(r: _Reader, data: Mapping[str, Any], url: str) -> dict[str, Any]:
    """HTTPS and credentials for the Pushgateway, as PushGatewayConfig keyword arguments."""
    username = r.get(data, "username", "push_gateway.username", _as_str, None)
    password = _secret(r, data, "password", "push_gateway.")
    token = _secret(r, data, "bearer_token", "push_gateway.")
    if token is not None and not _VISIBLE_ASCII.fullmatch(token.reveal()):
        # It goes into the Authorization header as it is.
        r.problem(
            "push_gateway.bearer_token",
            f"the token from {token.source} must be visible ASCII without spaces (value not shown)",
        )
    has_password = any(f"password{s}" in data for s in ("", "_file", "_env"))
    has_token = any(f"bearer_token{s}" in data for s in ("", "_file", "_env"))
    if "username" in data and has_token:
        r.problem("push_gateway", "choose basic auth (username) or bearer_token, not both")
    if has_password and "username" not in data:
        r.problem("push_gateway.username", "required with a password")
    if "username" in data and not has_password:
        r.problem("push_gateway.password", "required with username (or password_file, ...)")
    skip_verify = r.get(
        data, "insecure_skip_verify", "push_gateway.insecure_skip_verify", _as_bool, False
    )
    if skip_verify:
        r.warn(
            "push_gateway.insecure_skip_verify",
            "the Pushgateway's certificate is not checked: anyone in the path can read "
            "the credentials and the metrics",
        )
    ca = _file_path(r, data, "ca", "push_gateway.ca", private=False)
    if ca is not None:
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            r.problem("push_gateway.ca", f"{ca} is not a PEM CA bundle: {exc}")
    if urlsplit(url).scheme == "http":
        if "ca" in data or skip_verify:
            r.problem("push_gateway.url", "ca and insecure_skip_verify need an https:// url")
        if has_password or has_token:
            r.warn("push_gateway.url", "credentials would travel over plain http; use https")
    return {
        "ca": ca,
        "insecure_skip_verify": skip_verify,
        "username": username,
        "password": password,
        "bearer_token": token,
    }


def _push_gateway(r: _Reader, raw: object) -> PushGatewayConfig | None:
    data = r.mapping(raw, "push_gateway")
    if data is None:
        return None
    r.check_keys(data, "push_gateway.", _PUSH_KEYS)
    if data.get("url") is None:
        r.problem("push_gateway.url", "required: the Pushgateway base URL")
    url = r.get(data, "url", "push_gateway.url", _http_url, "http://invalid").rstrip("/")
    return PushGatewayConfig(
        url=url,
        **_push_auth(r, data, url),
        publisher_label=r.get(
            data, "publisher_label", "push_gateway.publisher_label", _as_bool, False
        ),
        timeout=r.get(data, "timeout", "push_gateway.timeout", _positive_duration, 10.0),
        concurrency=r.get(data, "concurrency", "push_gateway.concurrency", _int_in(1, 1024), 8),
        breaker_failures=r.get(
            data, "breaker_failures", "push_gateway.breaker_failures", _int_in(1, 10_000), 5
        ),
        breaker_cooldown=r.get(
            data, "breaker_cooldown", "push_gateway.breaker_cooldown", _positive_duration, 30.0
        ),
        stale_after=r.get(data, "stale_after", "push_gateway.stale_after", parse_duration, 0.0),
        stale_check_interval=r.get(
            data,
            "stale_check_interval",
            "push_gateway.stale_check_interval",
            _positive_duration,
            60.0,
        ),
        stale_publishers=r.get(
            data, "stale_publishers", "push_gateway.stale_publishers", _name_list, ()
        ),
    )


_JOB_KEYS = {
    "targets",
    "scrape_interval",
    "scrape_timeout",
    "body_size_limit",
    "scheme",
    "metrics_path",
    "file_sd_configs",
}
_TARGET_KEYS = {"name", "url", "labels"}
_FILE_SD_KEYS = {"files", "refresh_interval"}


def check_labels(raw: object) -> tuple[tuple[str, str], ...]:
    """Validate extra target labels: a mapping of label name to string value."""
    if not isinstance(raw, dict):
        raise ValueError(f"must be a mapping of label names to values, got {raw!r}")
    if len(raw) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels, got {len(raw)}")
    labels = []
    for name, value in raw.items():
        problem = label_name_problem(name)
        if problem:
            raise ValueError(problem)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"label {name!r} needs a string value, got {value!r}")
        labels.append((name, str(value)))
    return tuple(sorted(labels))


def _file_sd(r: _Reader, raw: object, where: str) -> tuple[FileSD, ...]:
    if not isinstance(raw, list):
        r.problem(where, "must be a list of {files, refresh_interval}")
        return ()
    result = []
    for index, item_raw in enumerate(raw):
        iwhere = f"{where}[{index}]"
        item = r.mapping(item_raw, iwhere)
        if item is None:
            continue
        r.check_keys(item, f"{iwhere}.", _FILE_SD_KEYS)
        files = item.get("files")
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, str) and f for f in files)
        ):
            r.problem(f"{iwhere}.files", "must be a non-empty list of file paths or globs")
            continue
        # As Prometheus does: relative paths are relative to the config file.
        base = Path(r.path).resolve().parent
        result.append(
            FileSD(
                files=tuple(str(base / f) for f in files),
                refresh_interval=r.get(
                    item,
                    "refresh_interval",
                    f"{iwhere}.refresh_interval",
                    _positive_duration,
                    300.0,
                ),
            )
        )
    return tuple(result)


def _jobs(
    r: _Reader, raw: object, interval: float, timeout: float, body_limit: int
) -> tuple[Job, ...]:
    data = r.mapping(raw, "jobs")
    if data is None:
        return ()
    jobs = []
    for job_name, job_raw in data.items():
        where = f"jobs.{job_name}"
        if not _NAME_RE.fullmatch(job_name) or job_name != job_name.strip():
            r.problem(where, "job names must not contain control characters or surrounding blanks")
        job = r.mapping(job_raw, where)
        if job is None:
            continue
        r.check_keys(job, f"{where}.", _JOB_KEYS)
        job_interval = r.get(
            job, "scrape_interval", f"{where}.scrape_interval", _positive_duration, interval
        )
        job_timeout = r.get(
            job, "scrape_timeout", f"{where}.scrape_timeout", _positive_duration, timeout
        )
        if "scrape_timeout" in job and job_timeout > job_interval:
            r.problem(
                f"{where}.scrape_timeout",
                f"{job_timeout:g}s is longer than the scrape_interval {job_interval:g}s",
            )
        job_timeout = min(job_timeout, job_interval)
        file_sd = (
            _file_sd(r, job["file_sd_configs"], f"{where}.file_sd_configs")
            if job.get("file_sd_configs") is not None
            else ()
        )
        targets_raw = job.get("targets")
        if targets_raw is None and file_sd:
            targets_raw = []
        elif not isinstance(targets_raw, list) or not targets_raw:
            r.problem(
                f"{where}.targets",
                "must be a non-empty list of {name, url} (or use file_sd_configs)",
            )
            continue
        targets: list[Target] = []
        seen: set[str] = set()
        for index, target_raw in enumerate(targets_raw):
            twhere = f"{where}.targets[{index}]"
            target = r.mapping(target_raw, twhere)
            if target is None:
                continue
            r.check_keys(target, f"{twhere}.", _TARGET_KEYS)
            if target.get("url") is None:
                r.problem(f"{twhere}.url", "required")
                continue
            url = r.get(target, "url", f"{twhere}.url", _http_url, "")
            if not url:
                continue
            name = r.get(target, "name", f"{twhere}.name", _as_name, default_instance_name(url))
            if name in seen:
                r.problem(f"{twhere}.name", f"duplicate target name {name!r} in job {job_name}")
            seen.add(name)
            labels: tuple[tuple[str, str], ...] = r.get(
                target, "labels", f"{twhere}.labels", check_labels, ()
            )
            targets.append(Target(name=name, url=url, labels=labels))
        jobs.append(
            Job(
                name=job_name,
                targets=tuple(targets),
                scrape_interval=job_interval,
                scrape_timeout=job_timeout,
                body_size_limit=r.get(
                    job, "body_size_limit", f"{where}.body_size_limit", parse_size, body_limit
                ),
                scheme=r.get(job, "scheme", f"{where}.scheme", _one_of("http", "https"), "http"),
                metrics_path=r.get(
                    job, "metrics_path", f"{where}.metrics_path", _url_path, "/metrics"
                ),
                file_sd=file_sd,
            )
        )
    return tuple(jobs)


_MANAGEMENT_KEYS = {"enabled", "subject_prefix", "brokers", "tls", "http_remote"}
_OBSOLETE_MANAGEMENT_KEYS = {
    "name": "a Choria backplane setting",
    "logfile": "a Choria backplane setting; management logs go to the main log",
    "loglevel": "a Choria backplane setting",
    "collective": "a Choria backplane setting",
    "auth": "a Choria backplane setting; use NATS permissions on subject_prefix",
}


def _management(
    r: _Reader, raw: object, identity: str, inherited: TLSConfig | None
) -> ManagementConfig:
    data = r.mapping(raw, "management")
    if data is None:
        return ManagementConfig()
    r.check_keys(data, "management.", _MANAGEMENT_KEYS, _OBSOLETE_MANAGEMENT_KEYS)
    prefix = r.get(
        data,
        "subject_prefix",
        "management.subject_prefix",
        _as_str,
        ManagementConfig.subject_prefix,
    )
    if not _TOPIC_RE.fullmatch(prefix):
        r.problem("management.subject_prefix", f"must be dot-separated tokens: {prefix!r}")
    brokers: tuple[str, ...] = r.get(data, "brokers", "management.brokers", _nats_urls, ())
    return ManagementConfig(
        enabled=r.get(data, "enabled", "management.enabled", _as_bool, True),
        subject_prefix=prefix,
        brokers=brokers,
        tls=_tls(r, data["tls"], "management.tls", identity) if "tls" in data else inherited,
        http_remote=r.get(data, "http_remote", "management.http_remote", _as_bool, False),
    )


_TOP_KEYS = {
    "identity",
    "verbose",
    "debug",
    "logfile",
    "scrape_interval",
    "scrape_timeout",
    "max_age",
    "monitor_port",
    "monitor_address",
    "body_size_limit",
    "max_line_length",
    "max_label_count",
    "shutdown_grace",
    "jobs",
    "poller_stream",
    "receiver_stream",
    "push_gateway",
    "management",
    "tls",
}


def parse(raw: object, path: str) -> Config:
    """Validate raw YAML data; raise ConfigError listing every problem."""
    r = _Reader(path)
    data = r.mapping(raw, "(top level)")
    if data is None:
        raise ConfigError(r.problems)
    r.check_keys(data, "", _TOP_KEYS)
    identity = r.get(data, "identity", "identity", _as_name, "") or socket.getfqdn()
    interval = r.get(
        data, "scrape_interval", "scrape_interval", _positive_duration, DEFAULT_SCRAPE_INTERVAL
    )
    timeout = r.get(
        data, "scrape_timeout", "scrape_timeout", _positive_duration, DEFAULT_SCRAPE_TIMEOUT
    )
    if data.get("scrape_timeout") is not None and timeout > interval:
        r.problem(
            "scrape_timeout", f"{timeout:g}s is longer than the scrape_interval {interval:g}s"
        )
    timeout = min(timeout, interval)
    body_limit = r.get(
        data, "body_size_limit", "body_size_limit", _size_in(1024, 2**31), DEFAULT_BODY_SIZE_LIMIT
    )
    tls = _tls(r, data["tls"], "tls", identity) if "tls" in data else None
    config = Config(
        path=path,
        identity=identity,
        verbose=r.get(data, "verbose", "verbose", _as_bool, False),
        debug=r.get(data, "debug", "debug", _as_bool, False),
        logfile=r.get(data, "logfile", "logfile", _as_str, None),
        scrape_interval=interval,
        scrape_timeout=timeout,
        max_age=r.get(data, "max_age", "max_age", parse_duration, 0.0),
        monitor_port=r.get(data, "monitor_port", "monitor_port", _int_in(0, 65535), 0),
        monitor_address=r.get(data, "monitor_address", "monitor_address", _as_str, "0.0.0.0"),  # noqa: S104
        body_size_limit=body_limit,
        max_line_length=r.get(
            data,
            "max_line_length",
            "max_line_length",
            _size_in(256, 2**26),
            DEFAULT_MAX_LINE_LENGTH,
        ),
        max_label_count=r.get(
            data,
            "max_label_count",
            "max_label_count",
            _int_in(1, 100_000),
            DEFAULT_MAX_LABEL_COUNT,
        ),
        shutdown_grace=r.get(data, "shutdown_grace", "shutdown_grace", _positive_duration, 10.0),
        jobs=_jobs(r, data.get("jobs"), interval, timeout, body_limit),
        poller_stream=(
            _stream(r, data["poller_stream"], "poller_stream", identity, tls)
            if data.get("poller_stream") is not None
            else None
        ),
        receiver_stream=(
            _stream(r, data["receiver_stream"], "receiver_stream", identity, tls)
            if data.get("receiver_stream") is not None
            else None
        ),
        push_gateway=(
            _push_gateway(r, data["push_gateway"]) if data.get("push_gateway") is not None else None
        ),
        tls=tls,
        management=_management(r, data.get("management"), identity, tls),
        warnings=tuple(r.warnings),
    )
    push = config.push_gateway
    stream = config.receiver_stream
    if push is not None and stream is not None:
        rounds = -(-stream.fetch_batch // push.concurrency)
        if stream.ack_wait < push.timeout * rounds:
            r.warn(
                "receiver_stream.ack_wait",
                f"{stream.ack_wait:g}s is shorter than a slow batch may take "
                f"({rounds} rounds of push_gateway.timeout {push.timeout:g}s): messages "
                "could be redelivered while still queued; raise it or lower fetch_batch",
            )
    if push is not None and push.stale_after and not push.publisher_label:
        r.problem(
            "push_gateway.stale_after",
            "needs publisher_label: true, or the receiver could not tell its groups from "
            "groups other clients push, and would delete them",
        )
    if push is not None and push.stale_publishers and not push.stale_after:
        r.warn("push_gateway.stale_publishers", "has no effect without stale_after")
    if any(job.name == SELF_JOB for job in config.jobs) and config.monitor_port:
        r.problem(f"jobs.{SELF_JOB}", "reserved for the poller's own metrics (monitor_port)")
    if r.problems:
        raise ConfigError(r.problems)
    return dataclasses.replace(config, warnings=tuple(r.warnings))


def load(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text: {exc.reason}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown place)"
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{name}: {where}: invalid YAML: {reason}"]) from None
    return parse(raw, name)


def describe(config: Config) -> dict[str, Any]:
    """The resolved configuration as plain data, for check-config."""

    def stream(s: StreamConfig | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {
            "urls": [redact_url(url) for url in s.urls],
            "topic": s.topic,
            "subjects": s.subjects,
            "stream": s.stream,
            "durable": s.durable,
            "replicas": s.replicas,
            "storage": s.storage,
            "stream_max_age_seconds": s.stream_max_age,
            "stream_max_bytes": s.stream_max_bytes,
            "max_msgs_per_subject": s.max_msgs_per_subject,
            "fetch_batch": s.fetch_batch,
            "ack_wait_seconds": s.ack_wait,
            "tls": describe_tls(s.tls),
            "auth": "none" if s.auth is None else s.auth.describe(),
        }

    return {
        "identity": config.identity,
        "log_level": "debug" if config.debug else "info",
        "logfile": config.logfile,
        "max_age_seconds": config.max_age,
        "monitor": f"{config.monitor_address}:{config.monitor_port}"
        if config.monitor_port
        else "disabled",
        "jobs": {
            job.name: {
                "scrape_interval_seconds": job.scrape_interval,
                "scrape_timeout_seconds": job.scrape_timeout,
                "body_size_limit_bytes": job.body_size_limit,
                "targets": {t.name: t.url for t in job.targets},
            }
            for job in config.jobs
        },
        "poller_stream": stream(config.poller_stream),
        "receiver_stream": stream(config.receiver_stream),
        "push_gateway": None
        if config.push_gateway is None
        else {
            "url": redact_url(config.push_gateway.url),
            "publisher_label": config.push_gateway.publisher_label,
            "timeout_seconds": config.push_gateway.timeout,
            "concurrency": config.push_gateway.concurrency,
            "stale_after_seconds": config.push_gateway.stale_after,
            "stale_check_interval_seconds": config.push_gateway.stale_check_interval,
            "stale_publishers": list(config.push_gateway.stale_publishers),
            "ca": config.push_gateway.ca,
            "insecure_skip_verify": config.push_gateway.insecure_skip_verify,
            "auth": config.push_gateway.describe_auth(),
        },
        "limits": {
            "max_line_length_bytes": config.max_line_length,
            "max_label_count": config.max_label_count,
        },
        "fit_for": [role for role in ROLES if not config.problems_for(role)],
    }
