"""The whole pipeline through real nats-server, Pushgateway and HTTP targets."""

from __future__ import annotations

import asyncio
import functools
import gzip
import time
import tracemalloc
from pathlib import Path

import pytest
from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    only_up_0,
    poller_config,
    publish_raw,
    publish_scrape,
    receiver_config,
    running,
)
from servers import NatsServer, Pushgateway, Target, async_wait_for, free_port

from prometheus_streams import wire
from prometheus_streams.exposition import SHAPE_VALUE_MAX
from prometheus_streams.receiver import acks as receiver_acks
from prometheus_streams.receiver import decode as receiver_decode


def _pushed(pushgateway: Pushgateway, job: str, instance: str) -> dict[str, float]:
    return group_samples(pushgateway.metrics_text(), job, instance)


async def test_target_metrics_reach_pushgateway_with_grouping_labels(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        series = await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get(
                'test_requests_total{code="200",publisher="dc1"}'
            ),
            message="target's counter never reached the Pushgateway",
        )
    assert series == 42
    pushed = _pushed(pushgateway, "node", "web-1")
    assert pushed['up{publisher="dc1"}'] == 1
    assert pushed['scrape_samples_scraped{publisher="dc1"}'] == 2
    assert 'scrape_duration_seconds{publisher="dc1"}' in pushed
    assert {"job": "node", "instance": "web-1", "publisher": "dc1"} in pushgateway.group_labels()
    assert "version=0.0.4" in target.headers_seen[0]["Accept"]
    assert metric(rreg, "receiver_pushes_total", result="success") >= 1


async def test_down_target_shows_up_0(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    target.status = 503
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    jobs = {
        "node": {
            "targets": [{"name": "erroring", "url": target.url}, {"name": "gone", "url": closed}]
        }
    }
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        for instance in ("erroring", "gone"):

            def has_up(i: str = instance) -> bool:
                return 'up{publisher="dc1"}' in _pushed(pushgateway, "node", i)

            await async_wait_for(has_up, message=f"no up series for {instance}")
    for instance in ("erroring", "gone"):
        pushed = _pushed(pushgateway, "node", instance)
        assert pushed['up{publisher="dc1"}'] == 0
        assert 'scrape_duration_seconds{publisher="dc1"}' in pushed
        assert not any(name.startswith("test_") for name in pushed)
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="http_status") >= 1
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="refused") >= 1


async def test_target_going_down_replaces_old_values(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('up{publisher="dc1"}') == 1
        )
        target.status = 500
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('up{publisher="dc1"}') == 0,
            message="a dead target kept showing up 1",
        )
    # PUT replaced the group: the frozen values of the dead target are gone.
    assert 'test_requests_total{code="200",publisher="dc1"}' not in _pushed(
        pushgateway, "node", "web-1"
    )


async def test_timestamped_samples_arrive_without_timestamps(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    target.body = (
        b"# TYPE stamped gauge\n"
        b'stamped{kind="a"} 3 1700000000000\n'
        b'stamped{kind="b c"} 4.5 1700000000001\n'
    )
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(
            lambda: 'stamped{kind="b c",publisher="dc1"}' in _pushed(pushgateway, "node", "web-1"),
            message="timestamped samples never arrived",
        )
    pushed = _pushed(pushgateway, "node", "web-1")
    assert pushed['stamped{kind="a",publisher="dc1"}'] == 3
    assert pushed['stamped{kind="b c",publisher="dc1"}'] == 4.5
    assert metric(rreg, "receiver_timestamps_stripped_total") >= 2


async def test_awkward_label_values_arrive_intact(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    instance = 'rack 1/"blue" node.example:9100'
    job = "my job/x"
    target.body = b'# TYPE odd gauge\nodd{path="/var/lib x",quote="say \\"hi\\""} 1\n'
    jobs = {job: {"targets": [{"name": instance, "url": target.url}]}}
    poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs, identity="dc 1/a"))
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(
            lambda: (
                {"job": job, "instance": instance, "publisher": "dc 1/a"}
                in pushgateway.group_labels()
            ),
            message="group with awkward labels never appeared",
        )
        await async_wait_for(lambda: _pushed(pushgateway, job, instance))
    pushed = _pushed(pushgateway, job, instance)
    # group_samples shows label values unescaped, as the parser returns them
    assert pushed['odd{path="/var/lib x",publisher="dc 1/a",quote="say "hi""}'] == 1


async def test_scrape_taken_while_pushgateway_is_down_arrives_later(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    pushgateway.stop()
    target.body = b"# TYPE marker gauge\nmarker 7\n"
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    async with running(poller):
        await async_wait_for(lambda: metric(preg, "poller_published_total") >= 1)
    # Only scrapes from the outage exist now; the receiver must not lose them.
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_naks_total", reason="pushgateway_unavailable") >= 1,
            message="receiver never tried the absent Pushgateway",
        )
        assert metric(rreg, "receiver_pushes_total", result="success") == 0
        await asyncio.to_thread(pushgateway.start)
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('marker{publisher="dc1"}') == 7,
            timeout=60,
            message="scrape from the outage never arrived",
        )


async def test_poller_and_receiver_survive_nats_restart(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    target.body = b"# TYPE marker gauge\nmarker 1\n"
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('marker{publisher="dc1"}') == 1
        )
        await asyncio.to_thread(nats_server.restart)
        target.body = b"# TYPE marker gauge\nmarker 2\n"
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('marker{publisher="dc1"}') == 2,
            timeout=60,
            message="pipeline did not recover after nats-server restarted",
        )
    assert metric(preg, "nats_reconnects_total", connection="stream") >= 1


async def test_poller_started_before_nats_buffers_newest_scrape(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    server = NatsServer(tmp_path / "late-nats")
    target.body = b"# TYPE marker gauge\nmarker 1\n"
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller, preg = new_poller(poller_config(tmp_path, server.url, jobs))
    try:
        async with running(poller):
            # scrapes go on without NATS; only the newest of the target waits
            await async_wait_for(
                lambda: metric(preg, "poller_dropped_total", reason="superseded") >= 2,
                message="poller did not keep scraping without NATS",
            )
            assert metric(preg, "poller_buffered_scrapes") == 1
            target.body = b"# TYPE marker gauge\nmarker 2\n"
            await async_wait_for(lambda: target.requests >= 5)
            await asyncio.to_thread(server.start)
            await async_wait_for(
                lambda: metric(preg, "poller_published_total") >= 1,
                timeout=60,
                message="buffered scrape never published after NATS came up",
            )
        receiver, _ = new_receiver(receiver_config(tmp_path, server.url, pushgateway.url))
        async with running(receiver):
            await async_wait_for(
                lambda: _pushed(pushgateway, "node", "web-1").get('marker{publisher="dc1"}') == 2
            )
    finally:
        server.stop()


async def test_receiver_survives_garbage_and_gzip_bombs(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    good = wire.Scrape("dc1", "node", "web-1", int(time.time() * 1000), b"good 1\n")
    subject, payload, headers = wire.encode("prometheus", good)

    def unique(extra: dict[str, str] | None = None) -> dict[str, str]:
        # a distinct Nats-Msg-Id each, or JetStream would store only the first
        msg_id = {wire.H_MSG_ID: f"garbage-{time.monotonic_ns()}"}
        return {**headers, **msg_id, **(extra or {})}

    await publish_raw(nats_server.url, subject, b"\x00not gzip at all", unique())
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)
    await publish_raw(nats_server.url, subject, bomb, unique())
    await publish_raw(nats_server.url, "prometheus.too.many.tokens.here", payload, unique())
    await publish_raw(nats_server.url, subject, payload, unique({wire.H_JOB: "other"}))
    await publish_raw(nats_server.url, subject, payload, None)
    cfg = receiver_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        body_size_limit="1MiB",
        stream={"max_msgs_per_subject": 10},  # the stream keeps every bad message
    )
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        for reason in (
            "bad_compression",
            "too_large",
            "bad_subject",
            "header_mismatch",
            "bad_version",
        ):

            def dropped(r: str = reason) -> bool:
                return metric(rreg, "receiver_dropped_total", reason=r) == 1

            await async_wait_for(dropped, message=f"no drop counted as {reason}")
        await publish_scrape(nats_server.url, b"# TYPE good gauge\ngood 1\n")
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('good{publisher="dc1"}') == 1,
            message="good data stopped flowing after garbage",
        )


async def test_bodies_beyond_the_inflate_budget_are_inflated_at_their_push(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No budget: every body waits for its push slot, and a broken one is found there.
    monkeypatch.setattr(receiver_decode, "INFLATE_AHEAD", 0)
    for i in range(3):
        await publish_scrape(
            nats_server.url, f"# TYPE late gauge\nlate {i}\n".encode(), instance=f"ok-{i}"
        )
    for instance, payload in (
        ("broken", b"\x1f\x8b\x08\x00 not a deflate stream"),
        ("bomb", gzip.compress(b"0" * (4 * 1024 * 1024), compresslevel=9)),
    ):
        scrape = wire.Scrape("dc1", "node", instance, int(time.time() * 1000), b"")
        subject, _, headers = wire.encode("prometheus", scrape)
        await publish_raw(nats_server.url, subject, payload, headers)
    cfg = receiver_config(tmp_path, nats_server.url, pushgateway.url, body_size_limit="1MiB")
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        for i in range(3):

            def pushed(i: int = i) -> bool:
                return _pushed(pushgateway, "node", f"ok-{i}").get('late{publisher="dc1"}') == i

            await async_wait_for(pushed, message=f"ok-{i} never pushed")
        for reason in ("bad_compression", "too_large"):

            def dropped(r: str = reason) -> bool:
                return metric(rreg, "receiver_dropped_total", reason=r) == 1

            await async_wait_for(dropped, message=f"no drop counted as {reason}")
    assert metric(rreg, "receiver_pushes_total", result="success") == 3
    assert not _pushed(pushgateway, "node", "broken") and not _pushed(pushgateway, "node", "bomb")


async def test_a_batch_of_large_pages_holds_its_inflate_budget_not_every_body(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count, budget = 40, 4 * 1024 * 1024
    monkeypatch.setattr(receiver_decode, "INFLATE_AHEAD", budget)
    # 2 MB pages (comment lines compress to almost nothing on the stream).
    page = b"# padding to make a large page of the kind kube-state-metrics serves\n" * 30_000
    page += b"# TYPE big_page gauge\nbig_page 1\n"
    for i in range(count):
        await publish_scrape(nats_server.url, page, instance=f"big-{i}")
    cfg = receiver_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        stream={"fetch_batch": count},
        push_gateway={
            "url": pushgateway.url,
            "publisher_label": True,
            "timeout": "30s",
            "concurrency": 2,
        },
    )
    receiver, rreg = new_receiver(cfg)
    tracemalloc.start()
    try:
        async with running(receiver):
            await async_wait_for(
                lambda: metric(rreg, "receiver_pushes_total", result="success") == count,
                timeout=120,
                message="the large pages were not all pushed",
            )
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Every body of the batch at once would be 80 MB: here the budget, one
    # body past it, and the two pushes in flight with their copies.
    assert peak < 32 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB of Python allocations"


async def test_receiver_drops_scrapes_older_than_max_age(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    old = time.time() - 600
    await publish_scrape(nats_server.url, b"old 1\n", instance="stale", scrape_time=old)
    await publish_scrape(nats_server.url, b"# TYPE fresh gauge\nfresh 1\n", instance="fresh")
    cfg = receiver_config(tmp_path, nats_server.url, pushgateway.url, max_age="1m")
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(lambda: _pushed(pushgateway, "node", "fresh"))
        await async_wait_for(lambda: metric(rreg, "receiver_dropped_total", reason="too_old") == 1)
    assert not _pushed(pushgateway, "node", "stale")


async def test_backlog_pushes_only_newest_scrape_per_group(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    now = time.time()
    for i in range(6):
        body = f"# TYPE marker gauge\nmarker {i}\n".encode()
        await publish_scrape(nats_server.url, body, scrape_time=now - 60 + i)
    # Several scrapes per subject: the receiver's own look-up skips the old ones.
    cfg = receiver_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        stream={"fetch_batch": 1, "max_msgs_per_subject": 10},
    )
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('marker{publisher="dc1"}') == 5
        )
        await async_wait_for(
            lambda: metric(rreg, "receiver_dropped_total", reason="superseded") == 5
        )
    assert metric(rreg, "receiver_pushes_total", result="success") == 1


async def test_pushgateway_rejection_terminates_message(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    # passes our own guard, but the Pushgateway refuses an unknown TYPE with a 400
    await publish_scrape(nats_server.url, b"# TYPE weird nonsense\nweird 1\n", instance="bad")
    await publish_scrape(nats_server.url, b"# TYPE fine gauge\nfine 1\n", instance="ok")
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(lambda: _pushed(pushgateway, "node", "ok"))
        await async_wait_for(lambda: metric(rreg, "receiver_dropped_total", reason="rejected") == 1)
    assert metric(rreg, "receiver_naks_total", reason="pushgateway_unavailable") == 0


async def test_two_receivers_share_one_durable_without_duplicates(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    groups = 60
    for i in range(groups):
        await publish_scrape(nats_server.url, f"# TYPE v gauge\nv {i}\n".encode(), instance=f"t{i}")
    first, reg1 = new_receiver(
        receiver_config(
            tmp_path, nats_server.url, pushgateway.url, name="r1", stream={"fetch_batch": 2}
        )
    )
    second, reg2 = new_receiver(
        receiver_config(
            tmp_path, nats_server.url, pushgateway.url, name="r2", stream={"fetch_batch": 2}
        )
    )

    def pushes() -> tuple[float, float]:
        name = "receiver_pushes_total"
        return metric(reg1, name, result="success"), metric(reg2, name, result="success")

    async with running(first), running(second):
        await async_wait_for(lambda: sum(pushes()) >= groups, timeout=60)
        await async_wait_for(lambda: len(pushgateway.groups()) >= groups)
    one, two = pushes()
    assert one + two == groups, "some group was pushed twice"
    assert one > 0 and two > 0, f"work not shared: {one} / {two}"


async def test_type_conflict_is_refused_before_a_fast_mode_pushgateway(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    fast = Pushgateway(tmp_path / "fast-pgw", ["--push.disable-consistency-check"])
    fast.start()
    try:
        await publish_scrape(nats_server.url, b"# TYPE shared counter\nshared 1\n", instance="a")
        receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, fast.url))
        async with running(receiver):
            await async_wait_for(lambda: _pushed(fast, "node", "a"))
            await publish_scrape(nats_server.url, b"# TYPE shared gauge\nshared 2\n", instance="b")
            await publish_scrape(nats_server.url, b"dup 1\ndup 2\n", instance="c")
            for reason in ("type_conflict", "inconsistent"):
                await async_wait_for(
                    functools.partial(
                        lambda r: metric(rreg, "receiver_dropped_total", reason=r) == 1, reason
                    ),
                    message=f"nothing refused as {reason}",
                )
        # The Pushgateway still serves a consistent page.
        text = fast.metrics_text()
        assert 'shared{instance="a",job="node",publisher="dc1"} 1' in text
        # The refused pages' groups hold up 0 instead, never a page.
        assert only_up_0(_pushed(fast, "node", "b")) and only_up_0(_pushed(fast, "node", "c"))
    finally:
        fast.stop()


async def test_known_shapes_skip_the_checks_but_nothing_else_slips_through(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    fast = Pushgateway(tmp_path / "fast-pgw", ["--push.disable-consistency-check"])
    fast.start()
    page = (
        b"# HELP t_total Seen since 1970\n# TYPE t_total counter\n"
        b't_total{x="1"} 1\nt_total{x="2"} 2\n'
    )
    try:
        receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, fast.url))
        async with running(receiver):
            await async_wait_for(lambda: receiver.ready()[0])
            await publish_scrape(nats_server.url, page, instance="a")
            await async_wait_for(lambda: _pushed(fast, "node", "a"))
            assert metric(rreg, "receiver_known_shape_bodies_total") == 0
            # Same shape, other values, other group: pushed without the per-line checks.
            await publish_scrape(nats_server.url, page.replace(b"} 2\n", b"} 9\n"), instance="b")
            await async_wait_for(
                lambda: _pushed(fast, "node", "b").get('t_total{publisher="dc1",x="2"}') == 9
            )
            assert metric(rreg, "receiver_known_shape_bodies_total") == 1
            # Near misses of the known shape are checked in full.
            dup = page.replace(b'x="2"', b'x="1"')
            await publish_scrape(nats_server.url, dup, instance="c")
            retyped = page.replace(b"counter", b"gauge")
            await publish_scrape(nats_server.url, retyped, instance="d")
            stamped = page.replace(b"} 2\n", b"} 5 1700000000000\n")
            await publish_scrape(nats_server.url, stamped, instance="e")
            for reason in ("inconsistent", "type_conflict"):
                await async_wait_for(
                    functools.partial(
                        lambda r: metric(rreg, "receiver_dropped_total", reason=r) == 1, reason
                    ),
                    message=f"nothing refused as {reason}",
                )
            await async_wait_for(
                lambda: _pushed(fast, "node", "e").get('t_total{publisher="dc1",x="2"}') == 5
            )
            assert metric(rreg, "receiver_timestamps_stripped_total") == 1
            assert metric(rreg, "receiver_known_shape_bodies_total") == 1
        text = fast.metrics_text()
        assert only_up_0(_pushed(fast, "node", "c")) and only_up_0(_pushed(fast, "node", "d"))
        assert 't_total{instance="b",job="node",publisher="dc1",x="2"} 9' in text
    finally:
        fast.stop()


async def test_a_shape_near_the_line_limit_is_checked_every_time(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    # A known shape skips the line-length check, so a shape is kept only when
    # no value body_shape takes out could push a line over the limit.
    limit = 256
    near = b"n_" + b"x" * (limit - 38 - 4)  # the line `near 1` is 38 short of it
    roomy = b"# TYPE r gauge\nr 1\n"
    cfg = receiver_config(tmp_path, nats_server.url, pushgateway.url, max_line_length=limit)
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        await publish_scrape(nats_server.url, near + b" 1\n", instance="a")
        await async_wait_for(lambda: _pushed(pushgateway, "node", "a"))
        await publish_scrape(nats_server.url, roomy, instance="r1")
        await async_wait_for(lambda: _pushed(pushgateway, "node", "r1"))
        await publish_scrape(nats_server.url, roomy.replace(b" 1", b" 2"), instance="r2")
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "r2").get('r{publisher="dc1"}') == 2
        )
        assert metric(rreg, "receiver_known_shape_bodies_total") == 1
        # Same shape as the first body, but its value now makes the line too long.
        longer = near + b" " + b"1" * SHAPE_VALUE_MAX + b"\n"
        await publish_scrape(nats_server.url, longer, instance="b")
        await async_wait_for(
            lambda: metric(rreg, "receiver_dropped_total", reason="line_too_long") == 1
        )
    assert metric(rreg, "receiver_known_shape_bodies_total") == 1
    assert only_up_0(_pushed(pushgateway, "node", "b"))


async def test_a_reload_forgets_known_shapes(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    # Without the publisher label a `publisher` label in the body is left alone;
    # once the grouping key sets it, the same shape must be renamed, not reused.
    page = b'# TYPE t gauge\nt{publisher="p"} 1\n'
    receiver, rreg = new_receiver(
        receiver_config(
            tmp_path,
            nats_server.url,
            pushgateway.url,
            push_gateway={"url": pushgateway.url, "publisher_label": False},
        )
    )
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        await publish_scrape(nats_server.url, page, instance="a")
        await publish_scrape(nats_server.url, page.replace(b"} 1", b"} 2"), instance="b")
        await async_wait_for(lambda: metric(rreg, "receiver_known_shape_bodies_total") == 1)
        receiver.reload(receiver_config(tmp_path, nats_server.url, pushgateway.url))
        await publish_scrape(nats_server.url, page.replace(b"} 1", b"} 3"), instance="c")
        await async_wait_for(
            lambda: (
                _pushed(pushgateway, "node", "c").get('t{exported_publisher="p",publisher="dc1"}')
                == 3
            )
        )
    assert metric(rreg, "receiver_labels_renamed_total") == 1
    assert metric(rreg, "receiver_known_shape_bodies_total") == 1


async def test_acks_held_back_to_share_a_write_are_all_sent_by_shutdown(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Held far longer than the run lasts: only the flush at shutdown sends them.
    monkeypatch.setattr(receiver_acks, "ACK_DELAY", 600.0)
    groups = 40
    for i in range(groups):
        await publish_scrape(nats_server.url, f"# TYPE v gauge\nv {i}\n".encode(), instance=f"t{i}")
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        # Stop the moment the last push is answered: its ack may still be waiting.
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="success") >= groups
        )
    second, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(second):
        await async_wait_for(lambda: second.ready()[0])

        # nats-server settles acks on its own time. Bounded well below ack_wait
        # (30 s): an ack never sent cannot be made up by a redelivery meanwhile.
        async def settled() -> bool:
            info = await second.conn.js.consumer_info("PROMETHEUS", "receiver")
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await async_wait_for(settled, timeout=5, message="acks still pending")
        info = await second.conn.js.consumer_info("PROMETHEUS", "receiver")
    assert info.num_redelivered == 0, info
    assert info.ack_floor is not None and info.ack_floor.consumer_seq == groups


async def test_default_stream_keeps_only_the_newest_scrape_of_a_backlog(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        receiver.pause()
        now = time.time()
        for i in range(5):
            body = f"# TYPE marker gauge\nmarker {i}\n".encode()
            await publish_scrape(nats_server.url, body, scrape_time=now - 60 + i)
        receiver.resume()
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('marker{publisher="dc1"}') == 4
        )
    assert metric(rreg, "receiver_pushes_total", result="success") == 1
