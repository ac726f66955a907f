"""A page that is not valid exposition text is a failed scrape: up 0, never a frozen up 1."""

from __future__ import annotations

from pathlib import Path

from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    only_up_0,
    poller_config,
    publish_scrape,
    receiver_config,
    running,
)
from prometheus_client.parser import text_string_to_metric_families
from servers import DEFAULT_TARGET_BODY, NatsServer, Pushgateway, Target, async_wait_for

from prometheus_streams.receiver.outputs.pushgateway import DOWN_REASONS

UP = 'up{publisher="dc1"}'
# Two seconds between scrapes leaves the receiver time to push each one
# before the next, so "within two scrapes" is a fair bound on a busy machine.
INTERVAL = "2s"


def _pushed(pushgateway: Pushgateway, instance: str) -> dict[str, float]:
    return group_samples(pushgateway.metrics_text(), "node", instance)


def _status_error(status: dict[str, object], name: str) -> str:
    targets = status["targets"]
    assert isinstance(targets, list)
    return str(next(t["last_error"] for t in targets if t["name"] == name))


async def test_a_target_serving_invalid_utf8_is_up_0(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    target.body = DEFAULT_TARGET_BODY + b'bad_label{v="caf\xe9"} 1\n'  # Latin-1, not UTF-8
    jobs = {"node": {"targets": [{"name": "latin1", "url": target.url}]}}
    cfg = poller_config(tmp_path, nats_server.url, jobs, scrape_interval=INTERVAL)
    poller, preg = new_poller(cfg)
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    seen: list[dict[str, float]] = []

    def first_push() -> dict[str, float]:
        pushed = _pushed(pushgateway, "latin1")
        if pushed:
            seen.append(pushed)
        return pushed

    async with running(poller), running(receiver):
        await async_wait_for(first_push, timeout=60, message="nothing pushed for the target")
        requests = target.requests
        assert requests <= 2, f"up 0 came only after {requests} scrapes"
        assert only_up_0(seen[0]), seen[0]
        error = _status_error(poller.status(), "latin1")
        assert "invalid exposition text" in error and "UTF-8" in error
        assert "line 7" in error
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="invalid_exposition") >= 1
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="success") == 0
    assert (
        preg.get_sample_value(
            "prometheus_streams_poller_scrapes_total", {"poller_job": "node", "result": "timeout"}
        )
        == 0
    ), "known results start at 0"


async def test_a_target_turning_bad_goes_to_up_0_and_loses_its_series(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    broken = Target(DEFAULT_TARGET_BODY)
    await broken.start()
    try:
        jobs = {
            "node": {
                "targets": [
                    {"name": "help", "url": target.url},
                    {"name": "broken", "url": broken.url},
                ]
            }
        }
        cfg = poller_config(tmp_path, nats_server.url, jobs, scrape_interval=INTERVAL)
        poller, preg = new_poller(cfg)
        receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
        async with running(poller), running(receiver):
            for instance in ("help", "broken"):

                def healthy(i: str = instance) -> bool:
                    pushed = _pushed(pushgateway, i)
                    return (
                        pushed.get(UP) == 1
                        and 'test_requests_total{code="200",publisher="dc1"}' in pushed
                    )

                await async_wait_for(healthy, timeout=60, message=f"{instance} never up 1")
            # The Pushgateway would store this HELP, and Prometheus would then
            # fail every scrape of it.
            target.body = DEFAULT_TARGET_BODY + b"# HELP odd Caf\xe9 time\nodd 1\n"
            broken.body = DEFAULT_TARGET_BODY + b"broken{code=200} 1\n"
            turned = {"help": target.requests, "broken": broken.requests}
            for instance, served in (("help", target), ("broken", broken)):

                def down(i: str = instance) -> bool:
                    return only_up_0(_pushed(pushgateway, i))

                await async_wait_for(down, timeout=60, message=f"{instance} kept its old page")
                scrapes = served.requests - turned[instance]
                assert scrapes <= 2, f"{instance}: up 0 came only after {scrapes} scrapes"
            status = poller.status()
        assert "HELP text of odd is not valid UTF-8" in _status_error(status, "help")
        assert "line 7" in _status_error(status, "broken")
        assert (
            metric(preg, "poller_scrapes_total", poller_job="node", result="invalid_exposition")
            >= 2
        )
        # Nothing reached the Pushgateway that it refused, and its page still parses.
        assert metric(rreg, "receiver_dropped_total", reason="rejected") == 0
        assert list(text_string_to_metric_families(pushgateway.metrics_text()))
    finally:
        await broken.stop()


async def test_the_receiver_pushes_up_0_for_a_page_it_cannot_push(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    # Straight onto the stream, past the poller's check: as an older poller would.
    good = b"# TYPE fine gauge\nfine 1\n"
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    for reason in DOWN_REASONS:
        assert metric(rreg, "receiver_down_pushes_total", reason=reason) == 0
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        for instance in ("refused", "unparsed"):
            await publish_scrape(nats_server.url, good, instance=instance)

            def up(i: str = instance) -> bool:
                return _pushed(pushgateway, i).get('fine{publisher="dc1"}') == 1

            await async_wait_for(up, message=f"the good page of {instance} never arrived")
        # The Pushgateway refuses this one with a 400; the receiver's own check the other.
        await publish_scrape(nats_server.url, b'fine{v="\xff"} 2\n', instance="refused")
        await publish_scrape(nats_server.url, b"fine 2\n-fine 3\n", instance="unparsed")
        for instance in ("refused", "unparsed"):

            def down(i: str = instance) -> bool:
                return only_up_0(_pushed(pushgateway, i))

            await async_wait_for(down, message=f"{instance} kept its last good page")

        async def settled() -> bool:
            info = await receiver.conn.js.consumer_info("PROMETHEUS", "receiver")
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await async_wait_for(settled, message="a refused message is still pending")
        info = await receiver.conn.js.consumer_info("PROMETHEUS", "receiver")
    assert info.num_redelivered == 0  # terminated once up 0 was in place
    assert metric(rreg, "receiver_down_pushes_total", reason="rejected") == 1
    assert metric(rreg, "receiver_down_pushes_total", reason="inconsistent") == 1
    assert metric(rreg, "receiver_dropped_total", reason="rejected") == 1
    assert metric(rreg, "receiver_dropped_total", reason="inconsistent") == 1
