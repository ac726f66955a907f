"""push_gateway.stale_publishers: validated at load, shown by check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from prometheus_streams.check_config import describe
from prometheus_streams.config import load
from prometheus_streams.errors import ConfigError

BASE = """\
receiver_stream: {urls: nats://127.0.0.1:4222, topic: prometheus}
push_gateway:
  url: http://127.0.0.1:9091
  publisher_label: true
"""


def _path(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def test_stale_publishers_are_loaded_and_shown(tmp_path: Path) -> None:
    config = load(_path(tmp_path, "  stale_after: 10m\n  stale_publishers: [old-dc, dc.3]\n"))
    assert config.push_gateway is not None
    assert config.push_gateway.stale_publishers == ("old-dc", "dc.3")
    shown = describe(config)["push_gateway"]
    assert shown["stale_publishers"] == ["old-dc", "dc.3"]
    assert shown["stale_after_seconds"] == 600


@pytest.mark.parametrize(
    ("value", "detail"),
    [("old-dc", "must be a list of names"), ("[ok, '']", "item 1: must be a non-empty string")],
)
def test_bad_stale_publishers_name_file_and_key(tmp_path: Path, value: str, detail: str) -> None:
    path = _path(tmp_path, f"  stale_after: 10m\n  stale_publishers: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert f"{path}: push_gateway.stale_publishers: {detail}" in caught.value.problems[0]


def test_stale_publishers_without_stale_after_warns(tmp_path: Path) -> None:
    config = load(_path(tmp_path, "  stale_publishers: [old-dc]\n"))
    assert any(
        "push_gateway.stale_publishers: has no effect without stale_after" in w
        for w in config.warnings
    )
