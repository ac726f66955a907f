"""What file discovery makes of the target files it reads."""

from __future__ import annotations

import json

import pytest

from prometheus_streams import config
from prometheus_streams.poller.discovery import DiscoveryError, parse_target_groups


@pytest.mark.parametrize(
    "groups",
    [
        [{"targets": ["a:1"], "labels": ["x"]}],
        [{"targets": ["a:1"], "labels": "rack"}],
        [{"targets": ["a:1"], "labels": {"__metrics_path__": "metrics x"}}],
        [{"targets": ["a:1"], "labels": {"instance": " padded "}}],
        [{"targets": ["a b:1"]}],
    ],
)
def test_bad_discovery_files_are_errors_not_crashes(groups: object) -> None:
    job = config.Job("node", (), 15.0, 10.0, 1 << 20)
    with pytest.raises(DiscoveryError):
        parse_target_groups("t.json", json.dumps(groups), job)


def test_good_discovery_file_gives_its_targets() -> None:
    job = config.Job("node", (), 15.0, 10.0, 1 << 20)
    groups = [{"targets": ["a:1", "b:2"], "labels": {"__metrics_path__": "/m"}}]
    targets = parse_target_groups("t.json", json.dumps(groups), job)
    assert [(t.name, t.url) for t in targets] == [("a:1", "http://a:1/m"), ("b:2", "http://b:2/m")]
