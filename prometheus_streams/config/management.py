"""The `management` section, and the top-level keys that belong to no section."""

from __future__ import annotations

import ipaddress
from typing import Any

from prometheus_streams.config.model import (
    DEFAULT_MAX_LABEL_COUNT,
    DEFAULT_MAX_LINE_LENGTH,
    ManagementConfig,
    TLSConfig,
)
from prometheus_streams.config.reader import Section
from prometheus_streams.config.tls import read_tls
from prometheus_streams.config.values import (
    TOPIC_RE,
    as_bool,
    as_str,
    int_in,
    nats_urls,
    one_of,
    positive_duration,
    size_in,
)
from prometheus_streams.units import parse_duration

MANAGEMENT_KEYS = {"enabled", "subject_prefix", "brokers", "tls", "http_remote"}
_OBSOLETE_MANAGEMENT_KEYS = {
    "name": "a Choria backplane setting",
    "logfile": "a Choria backplane setting; management logs go to the main log",
    "loglevel": "a Choria backplane setting",
    "collective": "a Choria backplane setting",
    "auth": "a Choria backplane setting; use NATS permissions on subject_prefix",
}
TOP_KEYS = {
    "identity",
    "verbose",
    "debug",
    "logfile",
    "log_format",
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
    "scrape_configs",
    "global",
    "poller_stream",
    "receiver_stream",
    "push_gateway",
    "remote_write",
    "publisher_label",
    "series_budget",
    "ha_backstop",
    "expected_publishers",
    "publisher_stale_after",
    "management",
    "tls",
    "ha",
}
# Names many hosts share: loopback names and the stock host names of images.
_SHARED_NAMES = {
    "localhost",
    "localhost.localdomain",
    "localhost6",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
    "localdomain",
    "(none)",
    "debian",
    "ubuntu",
    "fedora",
    "centos",
    "rocky",
    "almalinux",
    "raspberrypi",
}


def read_management(
    parent: Section, identity: str, inherited: TLSConfig | None
) -> ManagementConfig:
    """The `management` section, defaults when absent."""
    s = parent.mapping("management")
    if s is None:
        return ManagementConfig()
    s.check_keys(MANAGEMENT_KEYS, _OBSOLETE_MANAGEMENT_KEYS)
    prefix = s.get("subject_prefix", as_str, ManagementConfig.subject_prefix)
    if not TOPIC_RE.fullmatch(prefix):
        s.problem("subject_prefix", f"must be dot-separated tokens: {prefix!r}")
    brokers: tuple[str, ...] = s.get("brokers", nats_urls, ())
    return ManagementConfig(
        enabled=s.get("enabled", as_bool, True),
        subject_prefix=prefix,
        brokers=brokers,
        tls=read_tls(s, identity) if "tls" in s else inherited,
        http_remote=s.get("http_remote", as_bool, False),
    )


def read_top_level(s: Section) -> dict[str, Any]:
    """The top-level keys of no section (logging, monitor, limits), as Config keyword arguments."""
    return {
        "verbose": s.get("verbose", as_bool, False),
        "debug": s.get("debug", as_bool, False),
        "logfile": s.get("logfile", as_str, None),
        "log_format": s.get("log_format", one_of("text", "json"), "text"),
        "max_age": s.get("max_age", parse_duration, 0.0),
        "monitor_port": s.get("monitor_port", int_in(0, 65535), 0),
        "monitor_address": s.get("monitor_address", as_str, "0.0.0.0"),  # noqa: S104
        "max_line_length": s.get("max_line_length", size_in(256, 2**26), DEFAULT_MAX_LINE_LENGTH),
        "max_label_count": s.get("max_label_count", int_in(1, 100_000), DEFAULT_MAX_LABEL_COUNT),
        "shutdown_grace": s.get("shutdown_grace", positive_duration, 10.0),
    }


def shared_identity(identity: str) -> str | None:
    """Why `identity` looks shared by several hosts, or None when it looks like its own."""
    name = identity.strip().lower().rstrip(".")
    try:
        loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if name and name not in _SHARED_NAMES and not loopback and not name.startswith("localhost"):
        return None
    return (
        f"{identity!r} looks shared by other hosts: pollers with one identity overwrite "
        "each other's groups in the Pushgateway (and answer one management subject); "
        "set identity to a name of this host's own (the default is the OS host name)"
    )
