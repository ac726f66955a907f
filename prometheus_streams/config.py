"""Load, validate and resolve the YAML configuration into immutable objects."""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from prometheus_streams.errors import ConfigError
from prometheus_streams.units import parse_duration, parse_size

T = TypeVar("T")

SELF_JOB = "prometheus_streams"
DEFAULT_SCRAPE_INTERVAL = 60.0
DEFAULT_SCRAPE_TIMEOUT = 10.0
DEFAULT_BODY_SIZE_LIMIT = 32 * 1024 * 1024
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
    max_msgs_per_subject: int = 10
    fetch_batch: int = 64
    ack_wait: float = 30.0
    tls: TLSConfig | None = None

    @property
    def subjects(self) -> str:
        """The subject filter covering every message of this topic."""
        return f"{self.topic}.>"


@dataclass(frozen=True)
class Target:
    """One scrape target of a job."""

    name: str
    url: str


@dataclass(frozen=True)
class Job:
    """A named set of targets scraped on one schedule."""

    name: str
    targets: tuple[Target, ...]
    scrape_interval: float
    scrape_timeout: float
    body_size_limit: int


@dataclass(frozen=True)
class PushGatewayConfig:
    """Where and how the receiver pushes."""

    url: str
    publisher_label: bool = False
    timeout: float = 10.0
    concurrency: int = 8


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
    shutdown_grace: float = 10.0
    jobs: tuple[Job, ...] = ()
    poller_stream: StreamConfig | None = None
    receiver_stream: StreamConfig | None = None
    push_gateway: PushGatewayConfig | None = None
    tls: TLSConfig | None = None
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
        raise ValueError(f"not an http(s) URL: {text!r}")
    try:
        parts.port  # noqa: B018 - property raises on a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in URL {text!r}: {exc}") from None
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
            raise ValueError(f"not a NATS URL: {item!r}")
        urls.append(text)
    if not urls:
        raise ValueError("needs at least one URL")
    return tuple(urls)


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


_TLS_KEYS = {"scheme", "identity", "ssl_dir", "ca", "cert", "key"}


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
    tls = TLSConfig(
        scheme=scheme,
        identity=r.get(data, "identity", f"{where}.identity", _as_str, identity),
        ssl_dir=r.get(data, "ssl_dir", f"{where}.ssl_dir", _as_str, None),
        ca=r.get(data, "ca", f"{where}.ca", _as_str, None),
        cert=r.get(data, "cert", f"{where}.cert", _as_str, None),
        key=r.get(data, "key", f"{where}.key", _as_str, None),
    )
    if scheme == "puppet" and not tls.ssl_dir:
        r.problem(f"{where}.ssl_dir", "required with scheme: puppet")
    if scheme == "manual":
        for key in ("ca", "cert", "key"):
            if getattr(tls, key) is None:
                r.problem(f"{where}.{key}", "required with scheme: manual")
    return tls


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
            10,
        ),
        fetch_batch=r.get(data, "fetch_batch", f"{where}.fetch_batch", _int_in(1, 10_000), 64),
        ack_wait=r.get(data, "ack_wait", f"{where}.ack_wait", _positive_duration, 30.0),
        tls=tls,
    )


_PUSH_KEYS = {"url", "publisher_label", "timeout", "concurrency"}


def _push_gateway(r: _Reader, raw: object) -> PushGatewayConfig | None:
    data = r.mapping(raw, "push_gateway")
    if data is None:
        return None
    r.check_keys(data, "push_gateway.", _PUSH_KEYS)
    if data.get("url") is None:
        r.problem("push_gateway.url", "required: the Pushgateway base URL")
    return PushGatewayConfig(
        url=r.get(data, "url", "push_gateway.url", _http_url, "http://invalid").rstrip("/"),
        publisher_label=r.get(
            data, "publisher_label", "push_gateway.publisher_label", _as_bool, False
        ),
        timeout=r.get(data, "timeout", "push_gateway.timeout", _positive_duration, 10.0),
        concurrency=r.get(data, "concurrency", "push_gateway.concurrency", _int_in(1, 1024), 8),
    )


_JOB_KEYS = {"targets", "scrape_interval", "scrape_timeout", "body_size_limit"}
_TARGET_KEYS = {"name", "url"}


def _jobs(
    r: _Reader, raw: object, interval: float, timeout: float, body_limit: int
) -> tuple[Job, ...]:
    data = r.mapping(raw, "jobs")
    if data is None:
        return ()
    jobs = []
    for job_name, job_raw in data.items():
        where = f"jobs.{job_name}"
        if not _NAME_RE.fullmatch(job_name):
            r.problem(where, "job names must not contain control characters")
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
        targets_raw = job.get("targets")
        if not isinstance(targets_raw, list) or not targets_raw:
            r.problem(f"{where}.targets", "must be a non-empty list of {name, url}")
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
            name = r.get(target, "name", f"{twhere}.name", _as_str, default_instance_name(url))
            if name in seen:
                r.problem(f"{twhere}.name", f"duplicate target name {name!r} in job {job_name}")
            seen.add(name)
            targets.append(Target(name=name, url=url))
        jobs.append(
            Job(
                name=job_name,
                targets=tuple(targets),
                scrape_interval=job_interval,
                scrape_timeout=job_timeout,
                body_size_limit=r.get(
                    job, "body_size_limit", f"{where}.body_size_limit", parse_size, body_limit
                ),
            )
        )
    return tuple(jobs)


_MANAGEMENT_KEYS = {"name", "logfile", "loglevel", "brokers", "tls"}
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
    identity = r.get(data, "identity", "identity", _as_str, "") or socket.getfqdn()
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
        data, "body_size_limit", "body_size_limit", parse_size, DEFAULT_BODY_SIZE_LIMIT
    )
    tls = _tls(r, data["tls"], "tls", identity) if "tls" in data else None
    if "management" in data:
        management = r.mapping(data["management"], "management")
        if management is not None:
            r.check_keys(management, "management.", _MANAGEMENT_KEYS)
            r.warn("management", "ignored: the Choria backplane is not part of this version")
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
        warnings=tuple(r.warnings),
    )
    if any(job.name == SELF_JOB for job in config.jobs) and config.monitor_port:
        r.problem(f"jobs.{SELF_JOB}", "reserved for the poller's own metrics (monitor_port)")
    if r.problems:
        raise ConfigError(r.problems)
    return config


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
            "urls": list(s.urls),
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
            "tls": None if s.tls is None else {"scheme": s.tls.scheme, "identity": s.tls.identity},
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
            "url": config.push_gateway.url,
            "publisher_label": config.push_gateway.publisher_label,
            "timeout_seconds": config.push_gateway.timeout,
            "concurrency": config.push_gateway.concurrency,
        },
        "fit_for": [role for role in ROLES if not config.problems_for(role)],
    }
