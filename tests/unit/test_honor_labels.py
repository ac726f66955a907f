"""honor_labels: a page label named like a target label, kept or renamed as in Prometheus 2.42."""

from __future__ import annotations

import pytest

from prometheus_streams import wire
from prometheus_streams.exposition import escape_value, rename_labels
from prometheus_streams.poller.rewrite import with_target_labels
from prometheus_streams.receiver.outputs.rw_series import (
    Group,
    merge_labels,
    scrape_samples,
)
from prometheus_streams.receiver.remote_write.protocol import Rows
from prometheus_streams.units import parse_base2_size, parse_size
from prometheus_streams.wire import Scrape, WireError

PAGE = [("__name__", "m"), ("job", "inner"), ("tier", "page"), ("exported_tier", "x")]
TARGET = {"job": "j", "instance": "h:1", "tier": "edge"}


def test_without_honor_labels_the_target_wins_and_the_page_is_exported() -> None:
    assert with_target_labels(PAGE, TARGET) == {
        **TARGET,
        "__name__": "m",
        "exported_tier": "x",
        "exported_job": "inner",
        "exported_exported_tier": "page",
    }


def test_with_honor_labels_the_page_wins_and_the_target_fills_in() -> None:
    assert with_target_labels(PAGE, TARGET, honor=True) == {
        "instance": "h:1",
        "__name__": "m",
        "job": "inner",
        "tier": "page",
        "exported_tier": "x",
    }


def test_remote_write_merges_alike_and_never_honours_a_page_publisher() -> None:
    target = [*TARGET.items(), ("publisher", "dc1")]
    body = [*PAGE, ("publisher", "dc2")]
    honored = frozenset({"job", "instance", "tier"})
    assert dict(merge_labels(body, target, honored)) == {
        "__name__": "m",
        "job": "inner",
        "tier": "page",
        "exported_tier": "x",
        "exported_publisher": "dc2",
        "instance": "h:1",
        "publisher": "dc1",
    }
    assert dict(merge_labels(body, target)) == {
        **with_target_labels(PAGE, TARGET),
        "exported_publisher": "dc2",
        "publisher": "dc1",
    }


def _scrape(honor: bool) -> Scrape:
    return Scrape("dc1", "j", "h:1", 1000, b"", (("tier", "edge"),), honor)


def test_remote_write_merges_again_when_a_job_changes_its_choice() -> None:
    rows: Rows = [(b'm{job="inner"}', 1.0, None)]
    first = scrape_samples(_scrape(False), None, rows, "publisher")
    group = Group(series=first.present, whole=True, last_ms=1000)
    again = scrape_samples(_scrape(True), group, rows, "publisher")
    [(key, labels)], [old] = again.present.items(), first.present.values()
    assert key == b'm{job="inner"}' and labels != old
    assert b"exported_job" in old and b"exported_job" not in labels
    # The series under its old labels ends with a staleness marker.
    assert again.stale == 1 and len(again.encoded) == 2


@pytest.mark.parametrize(
    ("line", "out", "renamed"),
    [
        # The group's own value: Prometheus shows it once, as job="j".
        (b'm{job="j",instance="h:1"} 1', b'm{job="j",instance="h:1"} 1', 0),
        # Another value: the group cannot hold it; kept as exported_<name>.
        (b'm{job="inner",instance="h:1"} 1', b'm{exported_job="inner",instance="h:1"} 1', 1),
        (b'm{tier="a\\"b"} 1', b'm{tier="a\\"b"} 1', 0),
        (b'm{tier="page"} 1', b'm{exported_tier="page"} 1', 1),
        (b'm{publisher="dc1"} 1', b'm{exported_publisher="dc1"} 1', 1),
    ],
)
def test_the_pushgateway_keeps_a_page_label_equal_to_the_groups(
    line: bytes, out: bytes, renamed: int
) -> None:
    names = frozenset({b"job", b"instance", b"publisher", b"tier"})
    keep = {b"job": b"j", b"instance": b"h:1", b"tier": escape_value('a"b').encode()}
    assert rename_labels(line, names, keep) == (out, renamed)


def test_the_choice_travels_in_a_header_only_when_true() -> None:
    for honor in (False, True):
        scrape = Scrape("dc1", "j", "h:1", 1000, b"page\n", (), honor)
        subject, payload, headers = wire.encode("metrics", scrape)
        assert (wire.H_HONOR_LABELS in headers) is honor
        assert wire.decode("metrics", subject, payload, headers, 1 << 20).honor_labels is honor
    headers[wire.H_HONOR_LABELS] = "yes"
    with pytest.raises(WireError, match="Honor-Labels"):
        wire.decode("metrics", subject, payload, headers, 1 << 20)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MB", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("512KB", 512 * 1024),
        ("1GB", 1024**3),
        ("1.5KB", 1536),
        ("1MB512KB", 1024**2 + 512 * 1024),
        ("100B", 100),
        ("10 MiB", 10 * 1024**2),
        ("0", 0),
        (1048576, 1048576),
    ],
)
def test_a_job_body_size_limit_reads_as_prometheus_reads_it(text: object, size: int) -> None:
    assert parse_base2_size(text) == size


@pytest.mark.parametrize("text", ["10kB", "10mb", "1MB 2KB", "MB", "", "10XB", "-1MB", True])
def test_a_size_prometheus_refuses_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_base2_size(text)


def test_other_sizes_keep_their_documented_meaning() -> None:
    assert parse_size("512KB") == 512_000 and parse_size("10MiB") == 10 * 1024**2
