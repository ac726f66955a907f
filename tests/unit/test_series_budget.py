"""The series budget's rules, with a clock of our own: who keeps a slot, who gets one, when
it is given back; and the poller's cheap count for the top offenders."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from prometheus_streams import config
from prometheus_streams.check_config import describe
from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.errors import ConfigError
from prometheus_streams.poller.top import PageSeries
from prometheus_streams.receiver.series import BudgetMetrics, SeriesTracker, top


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys(name: str, ids: range) -> list[bytes]:
    return [f'{name}{{id="{i}"}}'.encode() for i in ids]


def budget(
    per_publisher: int = 0, forget_after: float = 60.0, **per_job: int
) -> SeriesBudgetConfig:
    pairs = tuple(sorted(per_job.items()))
    return SeriesBudgetConfig(per_publisher, pairs, forget_after)


A = ("dc1", "node", "a:9100")
B = ("dc1", "node", "b:9100")


def test_new_series_past_the_budget_are_refused_and_existing_ones_keep_flowing() -> None:
    registry = CollectorRegistry()
    tracker = SeriesTracker(budget(10), BudgetMetrics(registry), "pushgateway", Clock())
    assert tracker.admit(A, keys("m", range(8))) == set()
    refused = tracker.admit(B, [*keys("m", range(5)), b"up", b"scrape_duration_seconds"])
    assert len(refused) == 3  # two of B's five fit; the health series always do
    assert b"up" not in refused
    assert tracker.admit(A, keys("m", range(8))) == set()  # A's series still flow
    assert tracker.admit(B, keys("m", range(5))) == refused  # still no room
    sample = registry.get_sample_value(
        "prometheus_streams_receiver_series_over_budget_total",
        {"publisher": "dc1", "output": "pushgateway"},
    )
    assert sample == 6
    assert tracker.admit(("dc2", "node", "a"), keys("m", range(10))) == set()  # its own budget


def test_a_vanished_series_keeps_its_slot_for_forget_after_then_frees_it() -> None:
    clock = Clock()
    tracker = SeriesTracker(budget(10, forget_after=60), None, clock=clock)
    tracker.admit(A, keys("m", range(10)))
    tracker.admit(A, keys("m", range(5)))  # five vanish, but hold their slots
    assert tracker.admit(B, keys("n", range(3))) == set(keys("n", range(3)))
    assert tracker.admit(A, keys("m", range(10))) == set()  # they came back: no new slot
    tracker.admit(A, keys("m", range(5)))
    clock.now += 61
    tracker.admit(A, keys("m", range(5)))  # the sweep gives the five slots back
    assert tracker.admit(B, keys("n", range(3))) == set()


def test_a_silent_target_gives_its_slots_back() -> None:
    clock = Clock()
    tracker = SeriesTracker(budget(10, forget_after=60), None, clock=clock)
    tracker.admit(A, keys("m", range(10)))
    clock.now += 61
    assert tracker.admit(B, keys("n", range(10))) == set()


def test_per_job_budget_within_the_publisher() -> None:
    tracker = SeriesTracker(budget(100, node=4), None, clock=Clock())
    assert len(tracker.admit(A, keys("m", range(6)))) == 2
    assert tracker.admit(("dc1", "other", "x"), keys("m", range(6))) == set()


def test_filter_page_drops_the_lines_of_refused_series_only() -> None:
    tracker = SeriesTracker(budget(3), None, clock=Clock())
    page = b'# TYPE m gauge\nm{id="0"} 1\nm{id="1"} 2\n# HELP n x\nn 3\nn2 4\nup 1\n'
    assert (
        tracker.filter_page(A, page)
        == b'# TYPE m gauge\nm{id="0"} 1\nm{id="1"} 2\n# HELP n x\nn 3\nup 1\n'
    )
    # The same lines with other values: the refused one stays out.
    again = page.replace(b" 1\n", b" 5\n")
    assert b"n2 4" not in tracker.filter_page(A, again)


def test_without_a_budget_nothing_is_refused_and_the_top_ranks_targets() -> None:
    clock = Clock()
    tracker = SeriesTracker(SeriesBudgetConfig(), None, clock=clock)
    tracker.admit(A, keys("small", range(5)))
    tracker.admit(B, keys("big", range(50)))
    ranked = top([tracker], 1, now=clock.now)
    assert ranked["by_target"] == [
        {"publisher": "dc1", "job": "node", "instance": "b:9100", "series": 50, "over_budget": 0}
    ]
    assert ranked["by_metric_name"] == [{"metric": "big", "series": 50}]
    assert ranked["churn"][0]["instance"] == "b:9100"


def test_poller_counts_series_by_name_and_growth() -> None:
    series = PageSeries("dc1", Clock())
    series.note("node", "a", b"# TYPE m gauge\nm 1\nn 1\n")
    series.note("node", "b", b'x{i="1"} 1\nx{i="2"} 1\nx{i="3"} 1\nx{i="4"} 1\n')
    series.note("node", "a", b'# TYPE m gauge\nm 1\nn 1\nn{a="b"} 1\n')
    found = series.top(10)
    assert found["by_target"][0] == {
        "publisher": "dc1",
        "job": "node",
        "instance": "b",
        "series": 4,
    }
    assert found["by_metric_name"][0] == {"metric": "x", "series": 4}
    assert {"metric": "n", "series": 2} in found["by_metric_name"]
    assert found["by_job"] == [{"job": "node", "series": 7}]


def test_series_budget_config_errors_name_file_and_key(tmp_path: object) -> None:
    raw = {
        "receiver_stream": {"urls": "nats://127.0.0.1:4222"},
        "push_gateway": {"url": "http://127.0.0.1:9091"},
        "series_budget": {"per_publisher": 0, "per_job": {"node": "many"}, "forget": "1m"},
    }
    try:
        config.parse(raw, "c.yaml")
    except ConfigError as exc:
        problems = exc.problems
    else:
        raise AssertionError("accepted")
    assert "c.yaml: series_budget.forget: unknown key, did you mean 'forget_after'?" in problems
    assert (
        "c.yaml: series_budget.per_publisher: must be between 1 and 1000000000, got 0" in problems
    )
    assert "c.yaml: series_budget.per_job.node: must be an integer, got 'many'" in problems
    good = config.parse(
        {
            **raw,
            "series_budget": {"per_publisher": 5, "per_job": {"node": 2}, "forget_after": "2m"},
        },
        "c.yaml",
    )
    assert good.series_budget.per_job_map == {"node": 2}
    assert good.series_budget.forget_after == 120


def test_a_silent_publisher_leaves_the_top_after_forget_after() -> None:
    clock = Clock()
    tracker = SeriesTracker(budget(10, forget_after=60), None, clock=clock)
    tracker.admit(A, keys("m", range(3)))
    assert top([tracker], 5, now=clock.now)["by_publisher"][0]["series"] == 3
    clock.now += 61
    assert top([tracker], 5, now=clock.now)["by_publisher"] == []
    assert top([tracker], 5, now=clock.now)["by_target"] == []


def test_check_config_shows_the_budget() -> None:
    raw = {
        "receiver_stream": {"urls": "nats://127.0.0.1:4222"},
        "push_gateway": {"url": "http://127.0.0.1:9091"},
        "series_budget": {"per_publisher": 5, "per_job": {"node": 2}},
    }
    shown = describe(config.parse(raw, "c.yaml"))["series_budget"]
    assert shown == {"per_publisher": 5, "per_job": {"node": 2}, "forget_after_seconds": 600.0}
    del raw["series_budget"]
    assert describe(config.parse(raw, "c.yaml"))["series_budget"] is None


def test_unchanged_pages_still_free_the_slots_of_a_silent_target() -> None:
    clock = Clock()
    tracker = SeriesTracker(budget(4, forget_after=60), None, clock=clock)
    steady = b"a 1\nb 1\n"
    tracker.filter_page(A, steady)
    tracker.filter_page(B, b"c 1\nd 1\n")  # B then goes silent
    clock.now += 61
    tracker.filter_page(A, steady)  # the same page: no parse, but the sweep runs
    assert tracker.filter_page(A, b"a 1\nb 1\ne 1\nf 1\n") == b"a 1\nb 1\ne 1\nf 1\n"


def test_the_same_keys_again_are_known_without_a_set_yet_agree_with_a_fresh_copy() -> None:
    # Remote write passes a repeated page's keys as the same dict as the last
    # page's: the tracker answers at once, as it would for a copy of the keys.
    clock = Clock()
    fast = SeriesTracker(budget(10, forget_after=60), None, clock=clock)
    slow = SeriesTracker(budget(10, forget_after=60), None, clock=clock)
    page = dict.fromkeys(keys("m", range(8)), b"")
    crowded = dict.fromkeys([*keys("n", range(5)), b"up"], b"")
    for _ in range(3):
        assert fast.admit(A, page) == slow.admit(A, list(page)) == set()
        # B is over the budget: the same dict again is asked in full every time.
        assert fast.admit(B, crowded) == slow.admit(B, list(crowded)) == set(keys("n", range(2, 5)))
    clock.now += 61  # both silent past forget_after: swept, B comes back first
    assert fast.admit(B, crowded) == slow.admit(B, list(crowded)) == set()
    for _ in range(2):  # now A is over the budget, with the same dict as before
        assert fast.admit(A, page) == slow.admit(A, list(page)) == set(keys("m", range(4, 8)))
    assert (
        fast.publishers()
        == slow.publishers()
        == {"dc1": {"series": 14, "slots": 10, "over_budget": 4}}
    )
