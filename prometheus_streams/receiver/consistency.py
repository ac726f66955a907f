"""Refuse pushes the Pushgateway's consistency check would refuse, before they reach it.

With the check on, the Pushgateway re-checks everything it stores on every
push and slows down with the number of groups; with it off
(--push.disable-consistency-check) one bad push breaks every scrape of the
Pushgateway. Guarding here lets operators run it in the fast mode safely.

Caught: sample lines whose metric name is not valid, the same series twice in
one body (same name and label text), a metric whose TYPE differs from the
TYPE another group pushed through this receiver. Not caught: conflicts with
groups pushed by another receiver or another client, the same labels written
in a different order, HELP text differences.
"""

from __future__ import annotations

import re

from prometheus_streams.exposition import Sample, count_samples, first_bad_line, index_samples

# The literal prefix lets the regex engine skip ahead; exporters write `# TYPE`.
_TYPE = re.compile(rb"\n# TYPE[ \t]+(\S+)[ \t]+(\S+)")


class ConsistencyError(ValueError):
    """A body the Pushgateway would refuse or that would break its consistency."""


def check_body(body: bytes, samples: list[Sample] | None = None) -> frozenset[tuple[bytes, bytes]]:
    """Check one body; return its (metric name, type) pairs for the cross-group check."""
    if samples is None:
        samples = index_samples(body)
    if len(samples) != count_samples(body):
        bad = first_bad_line(body) or b"?"
        raise ConsistencyError(f"invalid metric name or labels in {bad[:200]!r}")
    series = [name for name, _, _ in samples]
    if len(set(series)) != len(series):
        seen: set[bytes] = set()
        for item in series:
            if item in seen:
                raise ConsistencyError(f"series {item[:200]!r} appears twice")
            seen.add(item)
    return frozenset(_TYPE.findall(b"\n" + body))


class TypeRegistry:
    """Which TYPE each metric name has in the groups this receiver pushed."""

    def __init__(self) -> None:
        # group -> its (name, type) pairs; identical sets (same exporter) are shared
        self._groups: dict[str, frozenset[tuple[bytes, bytes]]] = {}
        self._interned: dict[frozenset[tuple[bytes, bytes]], frozenset[tuple[bytes, bytes]]] = {}
        # name -> type -> number of groups using it
        self._types: dict[bytes, dict[bytes, int]] = {}

    def conflict(self, group: str, types: frozenset[tuple[bytes, bytes]]) -> str | None:
        """A description of the first conflict the group's types would cause, else None."""
        old = self._groups.get(group)
        if old == types:
            return None  # the common case: the same page shape as last time
        old = old or frozenset()
        for name, kind in types - old:
            users = self._types.get(name)
            if not users:
                continue
            for other, count in users.items():
                mine = 1 if (name, other) in old else 0
                if other != kind and count - mine > 0:
                    return (
                        f"metric {name.decode(errors='replace')} is {kind.decode(errors='replace')}"
                        f" here but {other.decode(errors='replace')} in another group"
                    )
        return None

    def record(
        self, group: str, types: frozenset[tuple[bytes, bytes]] | None
    ) -> frozenset[tuple[bytes, bytes]] | None:
        """Set a group's types (None: the group is gone); return what it had."""
        old = self._groups.get(group)
        if old == types:
            return old
        if old:
            self._count(old, -1)
        if types is None:
            self._groups.pop(group, None)
            return old
        if len(self._interned) > 10_000:
            self._interned.clear()  # interning only saves memory; start over
        types = self._interned.setdefault(types, types)
        self._groups[group] = types
        self._count(types, +1)
        return old

    def _count(self, types: frozenset[tuple[bytes, bytes]], delta: int) -> None:
        for name, kind in types:
            users = self._types.setdefault(name, {})
            users[kind] = users.get(kind, 0) + delta
            if users[kind] <= 0:
                del users[kind]
            if not users:
                del self._types[name]
