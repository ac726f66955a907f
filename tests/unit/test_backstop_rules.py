"""The HA backstop's rules, on scrape times of our own; the expected-publishers list and config."""

from __future__ import annotations

import random

import pytest
from backstop_cases import S, term_messages
from prometheus_client import CollectorRegistry

from prometheus_streams import config, wire
from prometheus_streams.check_config import describe
from prometheus_streams.config.publishers import HABackstopConfig
from prometheus_streams.errors import ConfigError
from prometheus_streams.receiver.backstop import MAX_PERIODS, Backstop
from prometheus_streams.receiver.backstop_rule import OLD_TERM, OTHER_REPLICA, PAST_PERIOD
from prometheus_streams.receiver.backstop_state import BackstopMetrics
from prometheus_streams.receiver.expected import ExpectedPublishers
from prometheus_streams.receiver.ha_headers import replica_of, term_of
from prometheus_streams.receiver.metrics import Publishers, ReceiverMetrics


def backstop(timeout: float = 30.0) -> tuple[Backstop, CollectorRegistry]:
    registry = CollectorRegistry()
    return Backstop(HABackstopConfig(True, timeout), BackstopMetrics(registry)), registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value("prometheus_streams_receiver_" + name, labels) or 0.0


def test_first_replica_is_accepted_and_the_other_refused_while_it_speaks() -> None:
    b, registry = backstop()
    assert b.refusal("dc1", "a", 100 * S, count=True) is None
    assert b.refusal("dc1", "b", 101 * S, count=True) == OTHER_REPLICA
    assert b.refusal("dc1", "a", 110 * S, count=True) is None
    # b's scrape 29 s after a's last: a is not silent long enough.
    assert b.refusal("dc1", "b", 139 * S, count=True) == OTHER_REPLICA
    assert value(registry, "ha_accepted_replica", publisher="dc1", replica="a") == 1
    assert value(registry, "ha_refused_total", publisher="dc1", reason=OTHER_REPLICA) == 2
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 0


def test_switch_only_after_the_accepted_replica_is_silent_for_failover_timeout() -> None:
    b, registry = backstop(30)
    assert b.refusal("dc1", "a", 100 * S, count=True) is None
    assert b.refusal("dc1", "b", 130 * S, count=True) == OTHER_REPLICA  # exactly 30 s: not yet
    assert b.refusal("dc1", "b", 131 * S, count=True) is None
    assert b.refusal("dc1", "a", 132 * S, count=True) == OTHER_REPLICA  # a comes back: refused
    assert b.refusal("dc1", "b", 140 * S, count=True) is None
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 1
    assert value(registry, "ha_accepted_replica", publisher="dc1", replica="b") == 1
    # One series per publisher: the replica no longer accepted is gone.
    assert (
        registry.get_sample_value(
            "prometheus_streams_receiver_ha_accepted_replica", {"publisher": "dc1", "replica": "a"}
        )
        is None
    )
    [row] = b.status()
    assert row["replica"] == "b" and row["switches"] == 1 and row["refused"] == 2


def test_publishers_are_independent() -> None:
    b, _ = backstop()
    assert b.refusal("dc1", "a", 100 * S, count=True) is None
    assert b.refusal("dc2", "b", 100 * S, count=True) is None
    assert b.refusal("dc2", "a", 101 * S, count=True) == OTHER_REPLICA


def test_a_late_message_is_judged_by_who_was_accepted_at_its_scrape_time() -> None:
    b, _ = backstop(30)
    b.refusal("dc1", "a", 100 * S, count=True)
    b.refusal("dc1", "b", 200 * S, count=True)  # switch at 200
    # A lane behind the others (a backlog) asks about older scrapes.
    assert b.refusal("dc1", "a", 150 * S, count=True) is None
    assert b.refusal("dc1", "b", 150 * S, count=True) == PAST_PERIOD
    assert b.refusal("dc1", "b", 50 * S, count=True) == PAST_PERIOD  # before the first period
    assert b.refusal("dc1", "a", 50 * S, count=True) is None


def test_a_counting_lane_behind_another_counts_the_reason_the_head_gave(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lane that counts may be behind one that does not (each output fetches at
    its own pace): the refusals it counts name the reason the head lane saw.

    It counted `past_period` once the other lane had switched, which made the
    count by reason depend on which lane was ahead (a flaky integration test).
    """
    b, registry = backstop(3)
    messages = [("a", 100_000)] + [("b", 100_000 + 5 + 507 * i) for i in range(8)]
    # The lane ahead (not counting) asks first and switches at b's first scrape past 3 s.
    ahead = [b.refusal("dc1", r, t, count=False) for r, t in messages]
    assert ahead == [None] + [OTHER_REPLICA] * 6 + [None, None]
    behind = [b.refusal("dc1", r, t, count=True) for r, t in messages]
    assert behind == ahead
    assert value(registry, "ha_refused_total", publisher="dc1", reason=OTHER_REPLICA) == 6
    assert value(registry, "ha_refused_total", publisher="dc1", reason=PAST_PERIOD) == 0
    # The warning names the replica accepted at the refused scrape's time, not b.
    [warning] = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
    assert "from replica b (other_replica): replica a is accepted" in warning


def test_a_disabled_backstop_accepts_every_replica() -> None:
    registry = CollectorRegistry()
    b = Backstop(HABackstopConfig(False, 30), BackstopMetrics(registry))
    assert b.refusal("dc1", "a", 100 * S, count=True) is None
    assert b.refusal("dc1", "b", 101 * S, count=True) is None


def test_only_the_counting_lane_counts_refusals() -> None:
    b, registry = backstop()
    b.refusal("dc1", "a", 100 * S, count=True)
    assert b.refusal("dc1", "b", 101 * S, count=False) == OTHER_REPLICA
    assert value(registry, "ha_refused_total", publisher="dc1", reason=OTHER_REPLICA) == 0


@pytest.mark.parametrize("seed", range(40))
def test_every_lane_takes_the_same_decision_whenever_it_asks(seed: int) -> None:
    """Two replicas in a split brain with gaps; lanes ask in different orders, late ones too.

    Whatever order the first asks in, asking again (as a lane behind does,
    or a redelivery) gives the same answer for every message.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    messages = []
    for replica in ("a", "b"):
        t = rng.randrange(0, 20) * S
        while t < 600 * S:
            messages.append((replica, t))
            t += rng.choice((1, 2, 5, 10, 45, 70)) * S
    # Fetch order: by scrape time, but with some messages late (redelivered).
    order = sorted(messages, key=lambda m: m[1] + rng.choice((0, 0, 0, 40 * S)))
    b, _ = backstop(30)
    first = {m: b.refusal("dc1", m[0], m[1], count=True) for m in order}
    again = list(messages)
    rng.shuffle(again)
    for m in again:
        # The answer stays, and so does the reason it is counted under.
        assert b.refusal("dc1", m[0], m[1], count=False) == first[m], m
    # Never two replicas accepted for one scrape time.
    accepted = {t: r for (r, t), why in first.items() if why is None}
    for (r, t), why in first.items():
        if why is None:
            assert accepted[t] == r


def test_history_is_bounded() -> None:
    b, _ = backstop(1)
    for i in range(MAX_PERIODS * 3):
        assert b.refusal("dc1", "ab"[i % 2], i * 10 * S, count=True) is None
    assert len(b._publishers["dc1"].periods) == MAX_PERIODS


def test_replica_header() -> None:
    assert replica_of(None) is None
    assert replica_of({wire.H_PUBLISHER: "dc1"}) is None
    assert replica_of({wire.H_REPLICA: "host-a:9101"}) == "host-a:9101"
    for bad in ("", "x" * 300, "a\x00b"):
        with pytest.raises(wire.WireError) as caught:
            replica_of({wire.H_REPLICA: bad})
        assert caught.value.reason == "bad_header"


# -- lease terms (fencing tokens) ----------------------------------------------


def test_a_newer_term_is_accepted_at_once_and_an_older_one_refused() -> None:
    b, registry = backstop(30)
    assert b.refusal("dc1", "a", 100 * S, count=True, token=5) is None
    # The standby took the lease: its term is newer, no silence needed.
    assert b.refusal("dc1", "b", 103 * S, count=True, token=7) is None
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 1
    assert value(registry, "ha_accepted_replica", publisher="dc1", replica="b") == 1
    # The new term starts right after the old replica's newest scrape: b's other
    # targets, scraped a little earlier, are accepted too.
    assert b.refusal("dc1", "b", 100 * S + 1, count=True, token=7) is None
    # One at the old replica's newest scrape stays refused, as it was before the switch.
    assert b.refusal("dc1", "b", 100 * S, count=True, token=7) == OTHER_REPLICA
    # The fenced old leader: a late message of its own stretch is still its own,
    # one that claims b's stretch is refused.
    assert b.refusal("dc1", "a", 99 * S, count=True, token=5) is None
    assert b.refusal("dc1", "a", 104 * S, count=True, token=5) == OLD_TERM
    assert value(registry, "ha_refused_total", publisher="dc1", reason=OLD_TERM) == 1
    [row] = b.status()
    assert row["replica"] == "b" and row["term"] == 7


def test_an_older_term_or_none_keeps_the_silence_rule() -> None:
    b, registry = backstop(30)
    assert b.refusal("dc1", "a", 100 * S, count=True, token=5) is None
    # Without a token (an older poller), or with an older or equal one: silence.
    assert b.refusal("dc1", "c", 110 * S, count=True) == OTHER_REPLICA
    assert b.refusal("dc1", "b", 110 * S, count=True, token=3) == OLD_TERM
    assert b.refusal("dc1", "b", 111 * S, count=True, token=5) == OTHER_REPLICA
    assert b.refusal("dc1", "c", 130 * S, count=True) == OTHER_REPLICA
    assert b.refusal("dc1", "c", 131 * S, count=True) is None  # a silent for 30 s
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 1
    # Any term is newer than none: a replica with one takes over at once.
    assert b.refusal("dc1", "a", 132 * S, count=True, token=5) is None
    # An older term takes over after silence too (a lease bucket made anew
    # counts its revisions from 1 again): no datacenter stays refused for good.
    assert b.refusal("dc1", "b", 150 * S, count=True, token=2) == OLD_TERM
    assert b.refusal("dc1", "b", 163 * S, count=True, token=2) is None
    assert b.status()[0]["term"] == 2
    # From there on newer terms switch at once again.
    assert b.refusal("dc1", "a", 164 * S, count=True, token=4) is None
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 4


def test_a_new_term_of_the_accepted_replica_fences_its_older_one_and_others() -> None:
    b, _ = backstop(30)
    assert b.refusal("dc1", "a", 100 * S, count=True, token=5) is None
    assert b.refusal("dc1", "a", 110 * S, count=True, token=9) is None  # it took the lease anew
    assert b.refusal("dc1", "b", 111 * S, count=True, token=7) == OLD_TERM
    assert b.refusal("dc1", "a", 112 * S, count=True, token=5) == OLD_TERM
    assert b.refusal("dc1", "a", 100 * S, count=True, token=5) is None  # within its old term
    [row] = b.status()
    assert row["switches"] == 0 and row["term"] == 9


@pytest.mark.parametrize("seed", range(40))
def test_every_lane_takes_the_same_decision_on_terms_whenever_it_asks(seed: int) -> None:
    """Failovers to newer terms, the old leader's scrapes running into the new term
    (clocks apart), older pollers without a token; lanes ask in different orders."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    messages = term_messages(rng, 600 * S)
    order = sorted(messages, key=lambda m: m[1] + rng.choice((0, 0, 0, 40 * S)))
    b, _ = backstop(30)
    first = {m: b.refusal("dc1", m[0], m[1], count=True, token=m[2]) for m in order}
    again = list(messages)
    rng.shuffle(again)
    for m in again:
        assert (b.refusal("dc1", m[0], m[1], False, m[2]) is None) == (first[m] is None), m
    accepted: dict[int, str] = {}
    for (r, at, _), why in first.items():
        if why is None:
            assert accepted.setdefault(at, r) == r, (r, at)


def test_term_header() -> None:
    assert term_of(None) == 0
    assert term_of({wire.H_REPLICA: "a"}) == 0
    assert term_of({wire.H_TERM: "42"}) == 42
    for bad in ("", "0", "-1", "+3", " 7", "x", "1e3", "\u0661", "9" * 21, str(2**64)):
        with pytest.raises(wire.WireError) as caught:
            term_of({wire.H_TERM: bad})
        assert caught.value.reason == "bad_header"


# -- config and the expected-publishers list ----------------------------------


def load(**extra: object) -> config.Config:
    data = {"identity": "central", **extra}
    return config.parse(data, "receiver.yaml")


def test_defaults_are_on_with_thirty_seconds_and_no_list() -> None:
    cfg = load()
    assert cfg.ha_backstop == HABackstopConfig(True, 30.0)
    assert cfg.expected_publishers == ()
    assert cfg.publisher_stale_after == 300.0


def test_expected_publishers_take_names_and_mappings() -> None:
    cfg = load(
        expected_publishers=["dc1", {"name": "dc2", "optional": True}, {"name": "dc3"}],
        publisher_stale_after="2m",
        ha_backstop={"failover_timeout": "45s"},
    )
    assert [(p.name, p.optional) for p in cfg.expected_publishers] == [
        ("dc1", False),
        ("dc2", True),
        ("dc3", False),
    ]
    assert cfg.publisher_stale_after == 120.0
    assert cfg.ha_backstop.failover_timeout == 45.0
    shown = describe(cfg)["publishers"]
    assert shown["expected_publishers"][1] == {"name": "dc2", "optional": True}
    assert shown["ha_backstop"]["failover_timeout_seconds"] == 45.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"expected_publishers": "dc1"}, "receiver.yaml: expected_publishers: must be a list"),
        ({"expected_publishers": ["dc1", "dc1"]}, "expected_publishers[1]: publisher 'dc1' is"),
        ({"expected_publishers": [{"optional": True}]}, "expected_publishers[0].name: required"),
        (
            {"expected_publishers": [{"name": "dc1", "optinal": True}]},
            "expected_publishers[0].optinal: unknown key, did you mean 'optional'?",
        ),
        (
            {"expected_publishers": [{"name": "dc1", "optional": "yes"}]},
            "expected_publishers[0].optional: must be true or false",
        ),
        ({"expected_publishers": [" dc1"]}, "expected_publishers[0]: must not start or end"),
        ({"ha_backstop": {"failover_timeout": "0s"}}, "ha_backstop.failover_timeout: must be"),
        ({"ha_backstop": {"timeout": "3s"}}, "ha_backstop.timeout: unknown key"),
        ({"publisher_stale_after": "soon"}, "receiver.yaml: publisher_stale_after:"),
    ],
)
def test_bad_publisher_settings_are_named_by_file_and_key(
    extra: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(**extra)
    assert message in str(caught.value), str(caught.value)


def test_expected_publishers_report_by_scrape_time_and_unlisted_ones_show() -> None:
    registry = CollectorRegistry()
    publishers = Publishers(ReceiverMetrics(registry))
    now = [1000.0]
    cfg = load(
        expected_publishers=["dc1", {"name": "dc2", "optional": True}],
        publisher_stale_after="1m",
    )
    watch = ExpectedPublishers(cfg, publishers, registry, clock=lambda: now[0])

    def reporting(name: str, optional: str) -> float | None:
        return registry.get_sample_value(
            "prometheus_streams_receiver_expected_publisher_reporting",
            {"publisher": name, "optional": optional},
        )

    assert reporting("dc1", "false") == 0 and reporting("dc2", "true") == 0
    publishers.heard("dc1", 990.0)
    publishers.heard("dc9", 995.0)
    assert reporting("dc1", "false") == 1
    assert [r["state"] for r in watch.status()] == ["reporting", "missing (optional)", "unexpected"]
    assert value(registry, "unexpected_publishers") == 1
    now[0] = 1051.0  # dc1's newest scrape is 61 s old
    assert reporting("dc1", "false") == 0
    assert watch.status()[0]["state"] == "missing"
    # A reload takes a new list: dc1 is gone, dc9 is expected now.
    watch.reload(load(expected_publishers=["dc9"], publisher_stale_after="1m"))
    assert reporting("dc1", "false") is None
    assert reporting("dc9", "false") == 1
    assert value(registry, "unexpected_publishers") == 0
