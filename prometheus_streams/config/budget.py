"""The `series_budget` section: how many series each publisher (and job) may hold at the centre."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import int_in, positive_duration

KEYS = {"per_publisher", "per_job", "forget_after"}
MAX_BUDGET = 1_000_000_000
DEFAULT_FORGET_AFTER = 600.0


@dataclass(frozen=True)
class SeriesBudgetConfig:
    """Series budgets at the receiver; 0 / empty means no budget."""

    per_publisher: int = 0
    # Job name -> series one publisher may hold for that job.
    per_job: tuple[tuple[str, int], ...] = ()
    # A series absent from its target's pages this long gives its slot back.
    forget_after: float = DEFAULT_FORGET_AFTER
    # per_job as a mapping, for the lookup on each page with new series.
    per_job_map: dict[str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_job_map", dict(self.per_job))

    @property
    def enabled(self) -> bool:
        """Whether any budget is set."""
        return bool(self.per_publisher or self.per_job)


def read_series_budget(top: Section) -> SeriesBudgetConfig:
    """The `series_budget` section (absent: no budget)."""
    s = top.mapping("series_budget")
    if s is None or not s.data:
        return SeriesBudgetConfig()
    s.check_keys(KEYS)
    per_job: list[tuple[str, int]] = []
    jobs = s.mapping("per_job")
    if jobs is not None:
        for job in jobs:
            limit = jobs.get(job, int_in(1, MAX_BUDGET), 0)
            if limit:
                per_job.append((job, limit))
    pairs = tuple(sorted(per_job))
    return SeriesBudgetConfig(
        per_publisher=s.get("per_publisher", int_in(1, MAX_BUDGET), 0),
        per_job=pairs,
        forget_after=s.get("forget_after", positive_duration, DEFAULT_FORGET_AFTER),
    )


def describe_series_budget(budget: SeriesBudgetConfig) -> dict[str, object] | None:
    """The budget as check-config prints it."""
    if not budget.enabled:
        return None
    return {
        "per_publisher": budget.per_publisher or None,
        "per_job": dict(budget.per_job),
        "forget_after_seconds": budget.forget_after,
    }
