"""The resolved scrape side of the configuration: jobs, their targets and discovery."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from prometheus_streams.config.model_nats import TLS_VERSIONS
from prometheus_streams.relabel import RelabelConfig
from prometheus_streams.secret import Secret


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
