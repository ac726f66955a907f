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
from dataclasses import dataclass

from prometheus_streams.exposition import (
    Sample,
    Shape,
    count_samples,
    first_bad_line,
    index_samples,
)

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


TypeSet = frozenset[tuple[bytes, bytes]]


class CheckedShapes:
    """Body shapes that passed every check, with their (name, type) pairs.

    A target's next scrape nearly always has the shape of its last one, and
    targets of one exporter often share a shape, so a known shape skips the
    per-line checks. Only bodies the checks left unchanged are recorded. When
    full it starts again empty: it refills from the bodies that come.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._types: dict[Shape, TypeSet] = {}
        self._interned: dict[TypeSet, TypeSet] = {}

    def __len__(self) -> int:
        return len(self._types)

    def get(self, shape: Shape) -> TypeSet | None:
        """The types of a checked shape, else None."""
        return self._types.get(shape)

    def add(self, shape: Shape, types: TypeSet) -> None:
        """Record a shape that passed; equal type sets are kept once."""
        if len(self._types) >= self.limit:
            self.clear()
        self._types[shape] = self._interned.setdefault(types, types)

    def clear(self) -> None:
        """Forget every shape (the limits or the grouping labels changed)."""
        self._types.clear()
        self._interned.clear()


@dataclass
class _Shape:
    """One distinct set of (name, type) pairs and how many groups have it."""

    types: TypeSet
    users: int = 0


class TypeRegistry:
    """Which TYPE each metric name has in the groups this receiver pushed.

    Groups of one exporter share one set of (name, type) pairs, so the index
    counts distinct sets, not groups: a new group with a known page shape
    costs a dictionary look-up, and only a new shape is checked name by name.
    """

    def __init__(self) -> None:
        self._groups: dict[str, TypeSet] = {}
        # distinct set -> its shared object and number of groups using it
        self._sets: dict[TypeSet, _Shape] = {}
        # name -> type -> number of distinct sets holding it
        self._types: dict[bytes, dict[bytes, int]] = {}

    def conflict(self, group: str, types: TypeSet) -> str | None:
        """A description of the first conflict the group's types would cause, else None."""
        old = self._groups.get(group)
        if old == types or types in self._sets:
            # Same shape as before, or a shape other groups hold: nothing conflicts
            # with a recorded shape, since every shape was checked when it came.
            return None
        sole_old = old if old is not None and self._users(old) == 1 else frozenset()
        for name, kind in types:
            for other, count in self._types.get(name, {}).items():
                mine = 1 if (name, other) in sole_old else 0
                if other != kind and count - mine > 0:
                    return (
                        f"metric {name.decode(errors='replace')} is {kind.decode(errors='replace')}"
                        f" here but {other.decode(errors='replace')} in another group"
                    )
        return None

    def record(self, group: str, types: TypeSet | None) -> TypeSet | None:
        """Set a group's types (None: the group is gone); return what it had."""
        old = self._groups.get(group)
        if old == types:
            return old
        if old is not None:
            self._release(old)
        if types is None:
            self._groups.pop(group, None)
            return old
        self._groups[group] = self._acquire(types)
        return old

    def _users(self, types: TypeSet) -> int:
        shape = self._sets.get(types)
        return shape.users if shape else 0

    def _acquire(self, types: TypeSet) -> TypeSet:
        shape = self._sets.get(types)
        if shape is None:
            shape = self._sets[types] = _Shape(types)
            self._count(types, +1)
        shape.users += 1
        return shape.types

    def _release(self, types: TypeSet) -> None:
        shape = self._sets[types]
        shape.users -= 1
        if not shape.users:
            del self._sets[types]
            self._count(types, -1)

    def _count(self, types: TypeSet, delta: int) -> None:
        for name, kind in types:
            users = self._types.setdefault(name, {})
            users[kind] = users.get(kind, 0) + delta
            if users[kind] <= 0:
                del users[kind]
            if not users:
                del self._types[name]
