"""The checks of a scrape's body before it is stored: limits, timestamps, labels, types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_streams.config import Config
from prometheus_streams.exposition import (
    SHAPE_VALUE_MAX,
    body_limits,
    body_shape,
    holds_label,
    index_samples,
    longest_line,
    rename_labels,
    shape_covers_samples,
    strip_timestamps,
)
from prometheus_streams.receiver.consistency import (
    CheckedShapes,
    ConsistencyError,
    TypeSet,
)
from prometheus_streams.receiver.consistency import check_body as check_types
from prometheus_streams.receiver.metrics import ReceiverMetrics

# Names every group sets: a body that holds one is renamed, so never kept as a shape.
_ALWAYS_GROUPING = frozenset({b"job", b"instance", b"publisher"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a body cannot be stored: a dropped_total reason and a sentence."""

    reason: str
    detail: str


class BodyChecker:
    """Checks bodies, and remembers the shapes of those that passed so their like skip it."""

    def __init__(self, metrics: ReceiverMetrics) -> None:
        self._metrics = metrics
        self.checked_shapes = CheckedShapes()

    def clear(self) -> None:
        """Forget the shapes that passed: the limits or the labels may have changed."""
        self.checked_shapes.clear()

    def check(
        self,
        body: bytes,
        where: str,
        config: Config,
        grouping_labels: frozenset[bytes],
        keep: Mapping[bytes, bytes] | None = None,
    ) -> tuple[bytes, TypeSet] | Refusal:
        """The body to store and its metric types, or why it cannot be stored.

        Timestamps are stripped and labels the grouping key sets are renamed
        to exported_<name>, but for those `keep` holds with the group's value
        (honor_labels); `where` names the group in a refusal.
        """
        limits = body_limits(config.max_line_length, config.max_label_count)
        shape = body_shape(body)
        # A page's label named like a target's (or kept for its value) renames
        # per group, never by shape: such bodies are checked every time.
        clash = holds_label(body, grouping_labels - _ALWAYS_GROUPING) or (
            keep is not None and holds_label(body, keep)
        )
        known = None if clash else self.checked_shapes.get(shape)
        if known is not None:
            # Same lines as a body that passed, but for the numbers ending them;
            # shapes are kept only where such numbers cannot make a line too long.
            self._metrics.shape_hits.inc()
            return body, known
        # One pass splits every sample line; the checks below share it.
        samples = index_samples(body)
        violation = limits.violation(body, samples)
        if violation is not None:
            return Refusal(*violation)
        body, stripped = strip_timestamps(body, samples)
        if stripped:
            self._metrics.timestamps_stripped.inc(stripped)
        body, renamed = rename_labels(body, grouping_labels, keep)
        if renamed:
            self._metrics.labels_renamed.inc(renamed)
            samples = index_samples(body)
        try:
            types = check_types(body, samples)
        except ConsistencyError as exc:
            return Refusal("inconsistent", f"{where}: {exc}")
        if (
            not stripped
            and not renamed
            and not clash
            and shape_covers_samples(body, shape, len(samples))
            # A value can also come onto a line that had none: its space too.
            and longest_line(body) + SHAPE_VALUE_MAX + 1 <= limits.max_line_length
        ):
            self.checked_shapes.add(shape, types)
        return body, types
