"""The configs we ship and document must load."""

from __future__ import annotations

from pathlib import Path

from prometheus_streams import config
from prometheus_streams.config.budget import KEYS as BUDGET_KEYS
from prometheus_streams.config.http_client import (
    AUTHORIZATION_KEYS,
    BASIC_AUTH_KEYS,
    TLS_CONFIG_KEYS,
)
from prometheus_streams.config.jobs import FILE_SD_KEYS, JOB_KEYS, TARGET_KEYS
from prometheus_streams.config.management import MANAGEMENT_KEYS, TOP_KEYS
from prometheus_streams.config.nats import STREAM_KEYS
from prometheus_streams.config.publishers import BACKSTOP_KEYS, EXPECTED_KEYS
from prometheus_streams.config.pushgateway import PUSH_KEYS
from prometheus_streams.config.remote_write import QUEUE_KEYS, RW_KEYS
from prometheus_streams.config.tls import TLS_KEYS

ROOT = Path(__file__).parent.parent.parent


def test_config_sample_loads_and_fits_both_roles() -> None:
    cfg = config.load(ROOT / "config.sample.yaml")
    assert cfg.problems_for("poller") == []
    assert cfg.problems_for("receiver") == []
    assert cfg.max_age == 90.0
    assert cfg.poller_stream is not None
    assert cfg.poller_stream.urls == (
        "nats://nats1.dc1.example.net:4222",
        "nats://nats2.dc1.example.net:4222",
    )
    assert cfg.poller_stream.stream_max_bytes == 1024**3
    node, discovered = cfg.jobs
    assert discovered.file_sd[0].files == ("/etc/prometheus-streams/targets/*.json",)
    assert [t.name for t in node.targets] == ["web1", "web2.dc1.example.net:9100"]
    assert (node.scrape_interval, node.scrape_timeout) == (30.0, 5.0)


def test_config_sample_mentions_every_key_the_loader_knows() -> None:
    text = (ROOT / "config.sample.yaml").read_text()
    documented = set()
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip().lstrip("- ")
        if ":" in stripped:
            documented.add(stripped.split(":", 1)[0])
    known = (
        TOP_KEYS
        | STREAM_KEYS
        | PUSH_KEYS
        | JOB_KEYS
        | TARGET_KEYS
        | TLS_KEYS
        | MANAGEMENT_KEYS
        | FILE_SD_KEYS
        | RW_KEYS
        | BASIC_AUTH_KEYS
        | AUTHORIZATION_KEYS
        | TLS_CONFIG_KEYS
        | QUEUE_KEYS
        | BUDGET_KEYS
        | BACKSTOP_KEYS
        | EXPECTED_KEYS
    )
    missing = sorted(known - documented)
    assert not missing, f"config.sample.yaml does not show: {missing}"
