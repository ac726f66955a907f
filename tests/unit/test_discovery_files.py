"""What file discovery makes of the target files it reads."""

from __future__ import annotations

import json

import pytest

from prometheus_streams import config
from prometheus_streams.poller.discovery import DiscoveryError, parse_target_groups
from prometheus_streams.poller.remote_sd import dns_meta


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


def test_discovery_metadata_is_kept_for_relabelling_only() -> None:
    job = config.Job("node", (), 15.0, 10.0, 1 << 20)
    groups = [
        {
            "targets": ["a:1"],
            "labels": {"rack": "r1", "__meta_zone": "z", "__meta_filepath": "forged"},
        }
    ]
    (target,) = parse_target_groups("/sd/t.json", json.dumps(groups), job)
    assert target.labels == (("rack", "r1"),)
    # As Prometheus: the file's path is __meta_filepath, whatever the group says.
    assert target.meta == (("__meta_filepath", "/sd/t.json"), ("__meta_zone", "z"))
    (fetched,) = parse_target_groups("http://sd/x", json.dumps(groups), job, True, "__meta_url")
    assert dict(fetched.meta)["__meta_url"] == "http://sd/x"


def test_dns_records_are_labelled_as_prometheus_does() -> None:
    assert dict(dns_meta("_m._tcp.svc", "host.svc.", "9100")) == {
        "__meta_dns_name": "_m._tcp.svc",
        "__meta_dns_srv_record_target": "host.svc.",
        "__meta_dns_srv_record_port": "9100",
        "__meta_dns_mx_record_target": "",
    }
    assert dict(dns_meta("web"))["__meta_dns_srv_record_port"] == ""
