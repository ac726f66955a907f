"""The resolved configuration: immutable objects, built once by `loading` and never changed.

The objects of each section family live in model_nats, model_jobs and model_outputs;
they are named here too, where the rest of the code looks for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.config.ha import HAConfig
from prometheus_streams.config.model_jobs import (
    DNSSD,
    HTTPSD,
    Authorization,
    BasicAuth,
    FileSD,
    HTTPTLSConfig,
    Job,
    Target,
)
from prometheus_streams.config.model_nats import (
    TLS_VERSIONS,
    NatsAuth,
    StreamConfig,
    StreamSource,
    TLSConfig,
)
from prometheus_streams.config.model_outputs import PushGatewayConfig, RemoteWriteConfig
from prometheus_streams.config.publishers import (
    DEFAULT_PUBLISHER_STALE_AFTER,
    ExpectedPublisher,
    HABackstopConfig,
)
from prometheus_streams.errors import ConfigError

SELF_JOB = "prometheus_streams"
DEFAULT_SCRAPE_INTERVAL = 60.0
DEFAULT_SCRAPE_TIMEOUT = 10.0
DEFAULT_BODY_SIZE_LIMIT = 32 * 1024 * 1024
DEFAULT_MAX_LINE_LENGTH = 64 * 1024
DEFAULT_MAX_LABEL_COUNT = 128
ROLES = ("poller", "receiver")
DEFAULT_PUBLISHER_LABEL = "publisher"

__all__ = [
    "DEFAULT_BODY_SIZE_LIMIT",
    "DEFAULT_MAX_LABEL_COUNT",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_PUBLISHER_LABEL",
    "DEFAULT_SCRAPE_INTERVAL",
    "DEFAULT_SCRAPE_TIMEOUT",
    "DNSSD",
    "HTTPSD",
    "ROLES",
    "SELF_JOB",
    "TLS_VERSIONS",
    "Authorization",
    "BasicAuth",
    "Config",
    "FileSD",
    "HTTPTLSConfig",
    "Job",
    "ManagementConfig",
    "NatsAuth",
    "PushGatewayConfig",
    "RemoteWriteConfig",
    "StreamConfig",
    "StreamSource",
    "TLSConfig",
    "Target",
]


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
