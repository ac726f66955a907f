"""Load, validate and resolve the YAML configuration into immutable objects.

`model` holds the objects, `reader` walks the YAML, one module per section family
holds that section's rules, and `loading` puts them together (`load`, `parse`).
"""

from prometheus_streams.config.jobs import check_labels, default_instance_name
from prometheus_streams.config.loading import load, parse
from prometheus_streams.config.management import shared_identity
from prometheus_streams.config.model import (
    DEFAULT_BODY_SIZE_LIMIT,
    DEFAULT_MAX_LABEL_COUNT,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SCRAPE_TIMEOUT,
    ROLES,
    SELF_JOB,
    Config,
    FileSD,
    Job,
    ManagementConfig,
    NatsAuth,
    PushGatewayConfig,
    RemoteWriteConfig,
    StreamConfig,
    StreamSource,
    Target,
    TLSConfig,
)
from prometheus_streams.config.tls import is_puppet_certname

__all__ = [
    "DEFAULT_BODY_SIZE_LIMIT",
    "DEFAULT_MAX_LABEL_COUNT",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_SCRAPE_INTERVAL",
    "DEFAULT_SCRAPE_TIMEOUT",
    "ROLES",
    "SELF_JOB",
    "Config",
    "FileSD",
    "Job",
    "ManagementConfig",
    "NatsAuth",
    "PushGatewayConfig",
    "RemoteWriteConfig",
    "StreamConfig",
    "StreamSource",
    "TLSConfig",
    "Target",
    "check_labels",
    "default_instance_name",
    "is_puppet_certname",
    "load",
    "parse",
    "shared_identity",
]
