"""The HA backstop's shared elections: create, revision-checked updates, holding when the store
cannot answer; receivers sharing one store, on an in-memory store with the bucket's semantics
(tests/integration/test_ha_backstop_shared.py runs it on a real nats-server)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest
from backstop_cases import S, term_messages
from prometheus_client import CollectorRegistry

from prometheus_streams import config
from prometheus_streams.check_config import describe
from prometheus_streams.config.publishers import HABackstopConfig
from prometheus_streams.errors import ConfigError
from prometheus_streams.receiver.backstop import HOLD, Backstop
from prometheus_streams.receiver.backstop_rule import OLD_TERM, OTHER_REPLICA, PAST_PERIOD
from prometheus_streams.receiver.backstop_state import BackstopMetrics
from prometheus_streams.receiver.election import (
    Conflict,
    ElectionStore,
    Period,
    Stored,
    StoreError,
    decode,
    encode,
    key_of,
    publisher_of,
)


class MemoryStore(ElectionStore):
    """A bucket in memory: create only when absent, update only from the current revision."""

    def __init__(self) -> None:
        super().__init__(cast(Any, None))
        self.keys: dict[str, Stored] = {}
        self.revision = 0
        self.down = False
        self.writes = 0

    async def get(self, publisher: str) -> Stored | None:
        await asyncio.sleep(0)  # another receiver may act meanwhile
        if self.down:
            raise StoreError("down")
        return self.keys.get(publisher)

    async def write(self, publisher: str, periods: tuple[Period, ...], revision: int) -> int:
        await asyncio.sleep(0)
        if self.down:
            raise StoreError("down")
        current = self.keys.get(publisher)
        if (current.revision if current else 0) != revision:
            raise Conflict()
        self.revision += 1
        self.writes += 1
        self.keys[publisher] = Stored(periods, self.revision)
        return self.revision


def receiver(store: MemoryStore, timeout: float = 30.0) -> tuple[Backstop, CollectorRegistry]:
    registry = CollectorRegistry()
    return Backstop(HABackstopConfig(True, timeout), BackstopMetrics(registry), store), registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value("prometheus_streams_receiver_" + name, labels) or 0.0


async def settle() -> None:
    """Let the write-backs under way finish."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_second_receiver_follows_the_stored_election() -> None:
    store = MemoryStore()
    one, _ = receiver(store)
    two, registry = receiver(store)
    assert await one.judge("dc1", "a", 100 * S, count=True) is None
    # Two never saw a: on its own it would elect b.
    assert await two.judge("dc1", "b", 101 * S, count=True) == OTHER_REPLICA
    assert await two.judge("dc1", "a", 102 * S, count=True) is None
    assert store.writes == 1
    assert value(registry, "ha_accepted_replica", publisher="dc1", replica="a") == 1
    # A restarted receiver (a new process) follows it as well.
    three, _ = receiver(store)
    assert await three.judge("dc1", "b", 103 * S, count=True) == OTHER_REPLICA


async def test_a_receiver_behind_the_store_cannot_contradict_a_stored_switch() -> None:
    store = MemoryStore()
    one, _ = receiver(store)
    two, registry = receiver(store)
    assert await one.judge("dc1", "a", 100 * S, count=True) is None
    assert await two.judge("dc1", "a", 110 * S, count=True) is None
    # Two switches to b: a silent for more than 30 s by what is stored and what it saw.
    assert await two.judge("dc1", "b", 141 * S, count=True) is None
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 1
    # One does not follow the bucket (its watch is late): what it decides without
    # a write lies before the switch, so it agrees.
    assert await one.judge("dc1", "a", 125 * S, count=True) is None
    assert await one.judge("dc1", "b", 126 * S, count=True) == OTHER_REPLICA
    # Past what is stored, it must write: the write conflicts, it reads the switch.
    assert await one.judge("dc1", "a", 150 * S, count=True) == OTHER_REPLICA
    assert await one.judge("dc1", "b", 145 * S, count=True) is None
    assert await one.judge("dc1", "b", 135 * S, count=True) == PAST_PERIOD
    assert value(registry, "ha_store_writes_total", outcome="conflict") == 0
    for b in (one, two):
        assert [r["replica"] for r in b.status()] == ["b"]


async def test_a_refusal_that_rests_on_what_one_receiver_saw_is_stored_first() -> None:
    store = MemoryStore()
    one, _ = receiver(store)
    assert await one.judge("dc1", "a", 100 * S, count=True) is None
    assert await one.judge("dc1", "a", 105 * S, count=True) is None  # not written back yet
    assert store.keys["dc1"].periods[-1][2] == 100 * S
    # b at 133: a is silent 33 s by the store but only 28 s by what one saw.
    assert await one.judge("dc1", "b", 133 * S, count=True) == OTHER_REPLICA
    assert store.keys["dc1"].periods[-1][2] == 105 * S
    # So no other receiver can switch before 135 s, which would accept b at 133.
    two, _ = receiver(store)
    assert await two.judge("dc1", "b", 134 * S, count=True) == OTHER_REPLICA
    assert await two.judge("dc1", "b", 136 * S, count=True) is None


async def test_the_newest_accepted_scrape_is_written_back_every_quarter_of_the_timeout() -> None:
    store = MemoryStore()
    one, registry = receiver(store, timeout=40)
    for t in range(100, 201):
        assert await one.judge("dc1", "a", t * S, count=True) is None
        await settle()
    assert store.keys["dc1"].periods[-1][2] >= 190 * S
    assert store.writes <= 1 + 100 // 10
    assert value(registry, "ha_store_writes_total", outcome="written") == store.writes
    # At shutdown, whatever is newer than the stored is written.
    await one.flush()
    assert store.keys["dc1"].periods[-1][2] == 200 * S


async def test_while_the_store_is_away_only_decisions_that_need_a_write_are_held() -> None:
    store = MemoryStore()
    one, registry = receiver(store)
    assert await one.judge("dc1", "a", 100 * S, count=True) is None
    store.down = True
    # What the last stored decision settles is still answered.
    assert await one.judge("dc1", "a", 120 * S, count=True) is None
    assert await one.judge("dc1", "b", 121 * S, count=True) == OTHER_REPLICA
    # Past it nobody can say: a's scrape at 131 s could lie after a switch to b
    # by another receiver, b's after 150 s might switch. Both held, never elected here.
    assert await one.judge("dc1", "a", 131 * S, count=True) == HOLD
    assert await one.judge("dc1", "b", 151 * S, count=True) == HOLD
    assert value(registry, "ha_held_total", publisher="dc1") == 2
    assert value(registry, "ha_refused_total", publisher="dc1", reason=OTHER_REPLICA) == 1
    fresh, _ = receiver(store)
    assert await fresh.judge("dc1", "b", 152 * S, count=True) == HOLD
    # Back: the held messages are decided when they come again.
    store.down = False
    assert await one.judge("dc1", "a", 131 * S, count=True) is None
    assert await fresh.judge("dc1", "b", 152 * S, count=True) == OTHER_REPLICA


async def test_an_expired_key_is_elected_anew_and_an_unreadable_one_overwritten() -> None:
    store = MemoryStore()
    one, registry = receiver(store)
    assert await one.judge("dc1", "a", 100 * S, count=True) is None
    del store.keys["dc1"]
    one.follow("dc1", None)  # the watch reports the key gone
    assert value(registry, "ha_accepted_replica", publisher="dc1", replica="a") == 0
    assert await one.judge("dc1", "b", 200 * S, count=True) is None
    store.keys["dc2"] = Stored((), 99)  # a value we could not read
    store.revision = 99
    one.follow("dc2", store.keys["dc2"])
    assert await one.judge("dc2", "a", 100 * S, count=True) is None
    assert store.keys["dc2"].periods == ((100 * S, "a", 100 * S),)


M = TypeVar("M", tuple[str, int], tuple[str, int, int])


async def ask_around(
    rng: random.Random,
    store: MemoryStore,
    messages: list[M],
    ask: Callable[[Backstop, M], Awaitable[None]],
) -> None:
    """Three receivers on `store`: each message, fetched by scrape time but some late, is
    asked of two of them, then again of one; the watch is late or lost at random."""
    order = sorted(messages, key=lambda m: m[1] + rng.choice((0, 0, 0, 40 * S)))
    receivers = [receiver(store)[0] for _ in range(3)]
    for m in order:
        first, again = rng.sample(receivers, 2)
        await asyncio.gather(ask(first, m), ask(again, m))
        if rng.random() < 0.5 and "dc1" in store.keys:
            rng.choice(receivers).follow("dc1", store.keys["dc1"])
        await settle()
    late = list(messages)
    rng.shuffle(late)
    for m in late:
        await ask(rng.choice(receivers), m)


@pytest.mark.parametrize("seed", range(30))
async def test_receivers_sharing_a_store_agree_on_every_message_whoever_asks(seed: int) -> None:
    """A split brain with gaps; each message goes to one of three receivers (the shared
    consumer) and again to another (a lane behind, a redelivery); the watch is late or
    lost at random. Every answer for a message is the same, and matches the store."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    messages = []
    for replica in ("a", "b"):
        t = rng.randint(0, 20) * S
        while t < 400 * S:
            messages.append((replica, t))
            t += rng.choice((1, 2, 5, 10, 45, 70)) * S
    store = MemoryStore()
    answers: dict[tuple[str, int], set[bool]] = {m: set() for m in messages}

    async def ask(b: Backstop, m: tuple[str, int]) -> None:
        answers[m].add(await b.judge("dc1", m[0], m[1], count=False) is None)

    await ask_around(rng, store, messages, ask)
    stored = store.keys["dc1"].periods
    for (replica, t), seen in answers.items():
        assert len(seen) == 1, (replica, t, seen)
        starts = [p[0] for p in stored]
        at = max([i for i, s in enumerate(starts) if s <= t], default=0)
        assert seen == {stored[at][1] == replica}, (replica, t, stored)


async def test_a_newer_term_is_stored_at_once_and_keeps_what_others_accepted_of_the_old() -> None:
    store = MemoryStore()
    one, registry = receiver(store)
    two, _ = receiver(store)
    assert await one.judge("dc1", "a", 100 * S, count=True, token=5) is None
    # Two accepts a's term up to 30 s past the stored newest scrape, without a write.
    assert await two.judge("dc1", "a", 112 * S, count=True, token=5) is None
    writes = store.writes
    # One hears of b's newer term: stored at once, from right after a's newest it saw.
    assert await one.judge("dc1", "b", 103 * S, count=True, token=7) is None
    assert store.writes == writes + 1
    assert store.keys["dc1"].periods == ((100 * S, "a", 100 * S, 5), (100 * S + 1, "b", 103 * S, 7))
    assert value(registry, "ha_replica_switches_total", publisher="dc1") == 1
    for b in (one, two):
        b.follow("dc1", store.keys["dc1"])
        # What two accepted of a's term stays accepted (the old period's tail), on both;
        # the old term past that tail is refused, the new term accepted.
        assert await b.judge("dc1", "a", 112 * S, count=False, token=5) is None
        assert await b.judge("dc1", "a", 131 * S, count=False, token=5) == OLD_TERM
        assert await b.judge("dc1", "b", 102 * S, count=False, token=7) is None
    # An older poller's message (no token) keeps the silence rule.
    assert await two.judge("dc1", "c", 120 * S, count=True) == OTHER_REPLICA


@pytest.mark.parametrize("seed", range(30))
async def test_receivers_agree_on_terms_whoever_asks(seed: int) -> None:
    """Failovers to newer terms, the old leader's scrapes running into the new term, older
    pollers without a token; each message goes to two of three receivers, later again to
    one; the watch is late or lost at random. Every answer for a message is the same."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    messages = term_messages(rng, 400 * S)
    store = MemoryStore()
    answers: dict[tuple[str, int, int], set[bool]] = {m: set() for m in messages}

    async def ask(b: Backstop, m: tuple[str, int, int]) -> None:
        answers[m].add(await b.judge("dc1", m[0], m[1], count=False, token=m[2]) is None)

    await ask_around(rng, store, messages, ask)
    for m, seen in answers.items():
        assert len(seen) == 1, (m, seen, store.keys["dc1"].periods)


def test_keys_and_values_round_trip() -> None:
    for name in ("dc1", "dc.eu-1", "Zürich", "a=b"):
        key = key_of(name)
        assert "%" not in key and "." not in key
        assert publisher_of(key) == name
    periods: tuple[Period, ...] = ((100, "host-a:9101", 130), (200, "host-b:9101", 200))
    assert decode(encode(periods)) == periods
    # With lease terms (the 4th field, only where there is one).
    periods = ((100, "host-a:9101", 130), (200, "host-b:9101", 200, 17))
    assert decode(encode(periods)) == periods
    assert b'[200, "host-b:9101", 200, 17]' in encode(periods)
    for bad in (
        b"",
        b"{}",
        b'{"format": 1, "periods": []}',
        b'{"format": 2, "periods": [[1,"a",1]]}',
        b'{"format": 1, "periods": [[1,"a",1,0]]}',
        b'{"format": 1, "periods": [[1,"a",1,"x"]]}',
        b'{"format": 1, "periods": [[1,"a",1,2,3]]}',
    ):
        with pytest.raises(ValueError, match="not an election"):
            decode(bad)
    with pytest.raises(ValueError, match="out of order"):
        decode(encode(((200, "a", 200), (100, "b", 100))))


def test_shared_is_the_default_and_can_be_turned_off() -> None:
    assert config.parse({"identity": "central"}, "r.yaml").ha_backstop.shared is True
    cfg = config.parse({"identity": "central", "ha_backstop": {"shared": False}}, "r.yaml")
    assert cfg.ha_backstop.shared is False
    assert describe(cfg)["publishers"]["ha_backstop"]["shared"] is False
    with pytest.raises(ConfigError, match=r"r.yaml: ha_backstop.shared: must be true or false"):
        config.parse({"identity": "central", "ha_backstop": {"shared": "yes"}}, "r.yaml")
