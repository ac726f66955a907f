"""What the remote-write output writes for a scrape: its samples, labelled, and stale markers.

Labels as Prometheus labels a scraped target: `job`, `instance`, the target's
labels, clashing body labels renamed `exported_*` (or, for a job with
honor_labels, kept in place of the target's), plus the publisher label.
A series of the target's last written scrape that this one lacks gets a
staleness marker at this scrape's time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_streams import wire
from prometheus_streams.receiver.remote_write import protocol
from prometheus_streams.receiver.remote_write.protocol import Rows
from prometheus_streams.receiver.remote_write.text import ParseError, series_labels


@dataclass
class Group:
    """What the output remembers of one target: its series in the last written scrape."""

    series: dict[bytes, bytes] = field(default_factory=dict)  # series key -> encoded labels
    # Every line of the last written scrape is in `series`, in page order (nothing dropped).
    whole: bool = False
    last_ms: int = 0  # scrape time of the last written scrape
    last_seen: float = field(default_factory=time.monotonic)
    honor_labels: bool = False  # how `series` labels were merged


@dataclass
class Samples:
    """One scrape's encoded samples (stale markers last) and what to remember of it."""

    # Encoded TimeSeries fields: one sample each, or a repeated page's all in one bytes.
    encoded: list[bytes]
    count: int  # samples in `encoded`
    present: dict[bytes, bytes]  # series key -> encoded labels, as written
    stale: int  # how many of `encoded` are staleness markers
    dropped: dict[str, int]  # lines left out, by reason


def target_labels(scrape: wire.Scrape, publisher_label: str) -> list[tuple[str, str]]:
    """The labels Prometheus would attach to the target's series, and the publisher's."""
    labels = [("job", scrape.job), ("instance", scrape.instance), *scrape.labels]
    if publisher_label:
        labels.append((publisher_label, scrape.publisher))
    return labels


def scrape_samples(
    scrape: wire.Scrape, group: Group | None, rows: Rows, publisher_label: str
) -> Samples:
    """The scrape's samples at its time (or the page's), and markers for the series it lost."""
    last = group.series if group is not None else {}
    # Labels merged the other way (the job's honor_labels changed) are merged again.
    reuse = group is not None and group.honor_labels == scrape.honor_labels
    known = last if reuse else {}
    at = scrape.scrape_time_ms
    encode = protocol.encode_series
    if group is not None and reuse and group.whole:
        # The same lines as the last written scrape, in the same order (most
        # scrapes): every label set is known and unique, and nothing went stale.
        page = protocol.encode_page(known, rows, at)
        if page is not None:
            return Samples([page], len(rows), known, 0, {})
    target = target_labels(scrape, publisher_label)
    # The publisher label is ours, never the page's: a page cannot pass for another site.
    honored = frozenset(("job", "instance", *(n for n, _ in scrape.labels)))
    honored = honored if scrape.honor_labels else frozenset()
    present: dict[bytes, bytes] = {}
    written: set[bytes] = set()
    out: list[bytes] = []
    dropped: dict[str, int] = {}
    for key, value, timestamp in rows:
        labels = known.get(key) or present.get(key)
        if labels is None:
            try:
                labels = protocol.encode_labels(merge_labels(series_labels(key), target, honored))
            except ParseError as exc:
                dropped[exc.reason] = dropped.get(exc.reason, 0) + 1
                continue
        if labels in written:
            dropped["duplicate_series"] = dropped.get("duplicate_series", 0) + 1
            continue
        written.add(labels)
        present[key] = labels
        out.append(encode(labels, ((value, at if timestamp is None else timestamp),)))
    stale = 0
    for key, labels in last.items():
        if (key not in present or not reuse) and labels not in written:
            out.append(encode(labels, ((protocol.STALE_NAN, at),)))
            stale += 1
    return Samples(out, len(out), present, stale, dropped)


def stale_markers(groups: list[Group], now_ms: int) -> list[bytes]:
    """Markers for every series of `groups`, never before a group's last written scrape."""
    return [
        protocol.encode_series(labels, ((protocol.STALE_NAN, max(now_ms, group.last_ms + 1)),))
        for group in groups
        for labels in group.series.values()
    ]


def merge_labels(
    body: list[tuple[str, str]],
    target: list[tuple[str, str]],
    honored: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """A body series' labels with the target's, as Prometheus merges them.

    A body label named like a target label is renamed `exported_<name>`
    (honor_labels: false), unless its name is in `honored` (honor_labels:
    true): then the body's value stays and the target's is not added.
    """
    present = {name for name, _ in body}
    kept = present & honored
    target = [(name, value) for name, value in target if name not in kept]
    taken = {name for name, _ in target}
    merged: list[tuple[str, str]] = []
    for name, value in body:
        if name in taken:
            new = "exported_" + name
            while new in present or new in taken:
                new = "exported_" + new
            present.add(new)
            name = new
        merged.append((name, value))
    return merged + [(name, value) for name, value in target if value]
