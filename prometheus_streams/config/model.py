"""The resolved configuration: immutable objects, built once by `loading` and never changed."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.config.ha import HAConfig
from prometheus_streams.config.publishers import (
    DEFAULT_PUBLISHER_STALE_AFTER,
    ExpectedPublisher,
    HABackstopConfig,
)
from prometheus_streams.errors import ConfigError
from prometheus_streams.relabel import RelabelConfig
from prometheus_streams.secret import Secret
from prometheus_streams.wire import escape_token

SELF_JOB = "prometheus_streams"
DEFAULT_SCRAPE_INTERVAL = 60.0
DEFAULT_SCRAPE_TIMEOUT = 10.0
DEFAULT_BODY_SIZE_LIMIT = 32 * 1024 * 1024
DEFAULT_MAX_LINE_LENGTH = 64 * 1024
DEFAULT_MAX_LABEL_COUNT = 128
ROLES = ("poller", "receiver")
DEFAULT_PUBLISHER_LABEL = "publisher"
# Prometheus' names; TLS10 and TLS11 are left out: Python's ssl deprecates them.
TLS_VERSIONS = {
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


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
class StreamSource:
    """One datacenter stream the central stream sources, through another domain's API."""

    name: str
    domain: str | None = None
    api_prefix: str | None = None
    deliver_prefix: str | None = None
    # Only this publisher's subjects come through: a datacenter cannot send as another.
    publisher: str | None = None

    @property
    def api(self) -> str | None:
        """The JetStream API prefix of the source's domain; None for this domain."""
        if self.api_prefix:
            return self.api_prefix
        return f"$JS.{self.domain}.API" if self.domain else None


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
    # Set by a receiver with remote write, not a config key: the stream keeps
    # every scrape (no per-subject limit), marked in its metadata.
    history: bool = False
    # The JetStream domain whose API provisions, acks and consumes (a leaf node's).
    domain: str | None = None
    # Set for a poller in a domain, not a config key: its edge stream takes only
    # this publisher's subjects, so leaf nodes sharing an account never store
    # each other's scrapes.
    publisher: str | None = None
    # A central stream built from datacenter streams: it has no subjects of its own.
    sources: tuple[StreamSource, ...] = ()

    @property
    def subjects(self) -> str:
        """The subject filter of every message of this topic (of one publisher at the edge)."""
        if self.publisher is not None:
            return f"{self.topic}.{escape_token(self.publisher)}.>"
        return f"{self.topic}.>"

    @property
    def api_prefix(self) -> str:
        """The JetStream API prefix: the domain's, or the connection's own."""
        return f"$JS.{self.domain}.API" if self.domain else "$JS.API"


@dataclass(frozen=True)
class Target:
    """One scrape target of a job; `labels` become extra grouping labels centrally."""

    name: str
    url: str
    labels: tuple[tuple[str, str], ...] = ()
    # Discovery's hidden labels (__meta_*, ...): relabel_configs sees them, nothing else does.
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FileSD:
    """Prometheus file-based discovery: target groups read from files."""

    files: tuple[str, ...]
    refresh_interval: float = 300.0


@dataclass(frozen=True)
class BasicAuth:
    """Prometheus' `basic_auth`: a user and a password (empty when not given)."""

    username: str
    password: Secret | None = None


@dataclass(frozen=True)
class Authorization:
    """Prometheus' `authorization` (and `bearer_token`): sent as `<type> <credentials>`."""

    credentials: Secret
    type: str = "Bearer"


@dataclass(frozen=True)
class HTTPTLSConfig:
    """Prometheus' `tls_config` for a scrape job or an http_sd endpoint."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None
    max_version: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """CA, client certificate and versions; the server name is per connection."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.minimum_version = TLS_VERSIONS[self.min_version or "TLS12"]
        if self.max_version is not None:
            context.maximum_version = TLS_VERSIONS[self.max_version]
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class HTTPSD:
    """Prometheus' `http_sd_configs` entry: target groups fetched from a URL."""

    url: str
    refresh_interval: float = 60.0
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls_config: HTTPTLSConfig | None = None
    proxy_url: str | None = None
    follow_redirects: bool = True


@dataclass(frozen=True)
class DNSSD:
    """Prometheus' `dns_sd_configs` entry; `nameserver` ("host:port") is ours."""

    names: tuple[str, ...]
    type: str = "SRV"
    port: int = 0
    refresh_interval: float = 30.0
    nameserver: str | None = None


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
    # False: timestamps in the page are dropped, samples take the scrape time
    # (remote write; the Pushgateway drops them either way).
    honor_timestamps: bool = True
    # A page's label named like a target label keeps its value (else: exported_<name>).
    honor_labels: bool = False
    # Prometheus' scrape_config keys, the same in `jobs:` and `scrape_configs:`.
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls_config: HTTPTLSConfig | None = None
    proxy_url: str | None = None
    follow_redirects: bool = True
    http_sd: tuple[HTTPSD, ...] = ()
    dns_sd: tuple[DNSSD, ...] = ()
    # Relabelling and limits, as Prometheus' scrape_config (0: no limit).
    relabel_configs: tuple[RelabelConfig, ...] = ()
    metric_relabel_configs: tuple[RelabelConfig, ...] = ()
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    target_limit: int = 0

    @property
    def rewrites_pages(self) -> bool:
        """Whether pages must be parsed: metric relabelling or a per-sample limit."""
        return bool(
            self.metric_relabel_configs
            or self.sample_limit
            or self.label_limit
            or self.label_name_length_limit
            or self.label_value_length_limit
        )


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
class RemoteWriteConfig:
    """One Prometheus Remote-Write 1.0 destination, in the keys of Prometheus' `remote_write`."""

    url: str
    # Unique across the list; [A-Za-z0-9_-]+, so it fits a NATS consumer name and a label.
    name: str
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password: Secret | None = None
    bearer_token: Secret | None = None
    # The scheme of `authorization` (Prometheus sends `<type> <credentials>`).
    authorization_type: str = "Bearer"
    ca: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None
    max_version: str | None = None
    remote_timeout: float = 30.0
    max_samples_per_send: int = 2000
    batch_send_deadline: float = 5.0
    min_backoff: float = 0.03
    max_backoff: float = 5.0
    # Ours, not Prometheus': a target silent this long gets its series marked
    # stale (0: never).
    stale_after: float = 300.0
    # Ours: how many receivers can write this output at once. Each partition
    # (the publishers whose name hashes to it) is written by one receiver at a time.
    partitions: int = 1

    def request_headers(self) -> dict[str, str]:
        """The user's headers and Authorization; the protocol's own headers are the sender's."""
        headers = dict(self.headers)
        if self.username is not None:
            password = self.password.reveal() if self.password is not None else ""
            pair = f"{self.username}:{password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif self.bearer_token is not None:
            headers["Authorization"] = f"{self.authorization_type} {self.bearer_token.reveal()}"
        return headers

    @property
    def tls_server_name(self) -> str | None:
        """The name to send (SNI) and to check the certificate against; None for http://."""
        if not self.url.startswith("https:"):
            return None
        return self.server_name or urlsplit(self.url).hostname

    def ssl_context(self) -> ssl.SSLContext | None:
        """CA, client certificate and versions for https:// (None for http://).

        The server name is per connection, not per context: pass `tls_server_name`
        as `server_hostname` when connecting.
        """
        if not self.url.startswith("https:"):
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        # Prometheus' default minimum, as for NATS.
        context.minimum_version = TLS_VERSIONS[self.min_version or "TLS12"]
        if self.max_version is not None:
            context.maximum_version = TLS_VERSIONS[self.max_version]
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def describe_auth(self) -> str:
        """How the receiver authenticates to this destination, never the secret."""
        methods = []
        if self.username is not None:
            source = self.password.source if self.password else "nowhere"
            methods.append(f"basic auth as {self.username} with password from {source}")
        elif self.bearer_token is not None:
            kind = (
                "bearer token"
                if self.authorization_type == "Bearer"
                else (f"{self.authorization_type} credentials")
            )
            methods.append(f"{kind} from {self.bearer_token.source}")
        if self.cert_file is not None:
            methods.append(f"client certificate {self.cert_file}")
        return ", ".join(methods) or "none"


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
    log_format: str = "text"
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
    remote_write: tuple[RemoteWriteConfig, ...] = ()
    # The label naming the poller on every remote-written series.
    publisher_label: str = DEFAULT_PUBLISHER_LABEL
    series_budget: SeriesBudgetConfig = field(default_factory=SeriesBudgetConfig)
    # The receiver's view of its publishers (config/publishers.py).
    ha_backstop: HABackstopConfig = field(default_factory=HABackstopConfig)
    expected_publishers: tuple[ExpectedPublisher, ...] = ()
    publisher_stale_after: float = DEFAULT_PUBLISHER_STALE_AFTER
    tls: TLSConfig | None = None
    management: ManagementConfig = ManagementConfig()
    # The poller's HA group; None: it publishes alone.
    ha: HAConfig | None = None
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
            if self.push_gateway is None and not self.remote_write:
                problems.append(
                    f"{self.path}: push_gateway, remote_write: the receiver needs at least "
                    "one output: a push_gateway section or a remote_write list"
                )
        return problems

    def require(self, role: str) -> None:
        """Raise ConfigError unless the config can run `role`."""
        problems = self.problems_for(role)
        if problems:
            raise ConfigError(problems)
