"""The poller's `ha` section: loaded, defaulted, checked with file and key, shown."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from prometheus_streams.check_config import describe
from prometheus_streams.config import load
from prometheus_streams.errors import ConfigError
from prometheus_streams.poller.ha import bucket_name, lease_key

BASE = """\
identity: dc1
poller_stream: {urls: nats://127.0.0.1:4222, topic: prometheus}
jobs: {node: {targets: [{name: web-1, url: "http://127.0.0.1:9100/metrics"}]}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "poller.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(_write(tmp_path, BASE + extra))
    return str(caught.value)


def test_without_ha_nothing_changes(tmp_path: Path) -> None:
    config = load(_write(tmp_path, BASE))
    assert config.ha is None
    assert describe(config)["ha"] is None


def test_ha_is_loaded_and_shown(tmp_path: Path) -> None:
    extra = "ha: {group: dc1-pollers, failover_timeout: 10s, priority: 2, replica: poller-a}\n"
    config = load(_write(tmp_path, BASE + extra))
    assert config.ha is not None
    assert (config.ha.group, config.ha.replica) == ("dc1-pollers", "poller-a")
    assert config.ha.failover_timeout == 10.0
    assert config.ha.take_delay == 1.0
    shown = describe(config)["ha"]
    assert shown["replica"] == "poller-a"
    assert shown["failover_timeout_seconds"] == 10.0
    assert shown["priority"] == 2


def test_the_default_replica_tells_two_pollers_on_one_host_apart(tmp_path: Path) -> None:
    names = set()
    for port in (9101, 9102):
        config = load(_write(tmp_path, BASE + f"monitor_port: {port}\nha: {{group: g}}\n"))
        assert config.ha is not None
        assert config.ha.failover_timeout == 30.0
        names.add(config.ha.replica)
    assert names == {f"{socket.gethostname()}:9101", f"{socket.gethostname()}:9102"}


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ("ha: {failover_timeout: 10s, replica: a}\n", "ha.group: required"),
        ("ha: {group: 'dc 1', replica: a}\n", "ha.group: must match [A-Za-z0-9_-]+"),
        ("ha: {group: g}\n", "ha.replica: required without monitor_port"),
        ("ha: {group: g, replica: a, failover_timeout: 500ms}\n", "at least 1s"),
        ("ha: {group: g, replica: a, priority: 10}\n", "ha.priority: must be between 0 and 9"),
        ("ha: {group: g, replica: a, leader: true}\n", "ha.leader: unknown key"),
        ("ha: [g]\n", "ha: must be a mapping"),
    ],
)
def test_bad_ha_names_file_and_key(tmp_path: Path, extra: str, detail: str) -> None:
    problems = _problems(tmp_path, extra)
    assert "poller.yaml: " in problems
    assert detail in problems


def test_the_lease_key_is_a_valid_kv_key_for_any_identity() -> None:
    assert lease_key("dc1") == "publisher.dc1"
    escaped = lease_key("dc 1.example:443")
    assert escaped.startswith("publisher.dc_1_example_443_")
    assert escaped != lease_key("dc_1.example:443")
    assert bucket_name("g") == "prometheus-streams-ha-g"
