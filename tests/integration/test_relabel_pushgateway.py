"""relabel_configs, metric_relabel_configs, sample_limit: real poller, real Pushgateway."""

from __future__ import annotations

from pathlib import Path

from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    poller_config,
    receiver_config,
    running,
)
from servers import DEFAULT_TARGET_BODY, NatsServer, Pushgateway, Target, async_wait_for

BIG_BODY = DEFAULT_TARGET_BODY + b"".join(
    b'test_requests_total{code="%d"} 1\n' % code for code in range(500, 505)
)


async def test_relabelled_targets_and_pages_reach_the_pushgateway(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    async with Target() as small, Target(BIG_BODY) as big, Target() as dropped:
        jobs = {
            "node": {
                "targets": [
                    {"name": "small", "url": small.url, "labels": {"keep": "yes", "dc": "a"}},
                    {"name": "big", "url": big.url, "labels": {"keep": "yes", "dc": "b"}},
                    {"name": "dropped", "url": dropped.url, "labels": {"keep": "no"}},
                ],
                "relabel_configs": [
                    {"source_labels": ["keep"], "regex": "yes", "action": "keep"},
                    {"source_labels": ["dc"], "target_label": "site", "replacement": "site-$1"},
                    {"regex": "keep|dc", "action": "labeldrop"},
                ],
                "metric_relabel_configs": [
                    {
                        "source_labels": ["__name__"],
                        "regex": "test_temperature_.*",
                        "action": "drop",
                    },
                    {"regex": "code", "action": "labeldrop"},
                ],
                "sample_limit": 3,
            }
        }
        cfg = poller_config(tmp_path, nats_server.url, jobs, scrape_interval="1s")
        poller, preg = new_poller(cfg)
        receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
        async with running(poller), running(receiver):

            def both_pushed() -> bool:
                text = pushgateway.metrics_text()
                return bool(group_samples(text, "node", "small")) and bool(
                    group_samples(text, "node", "big")
                )

            await async_wait_for(both_pushed, timeout=60, message="small and big not pushed")
            text = pushgateway.metrics_text()
        assert dropped.requests == 0
    ours = {
        k: v
        for k, v in group_samples(text, "node", "small").items()
        if not k.startswith(("push_time_seconds", "push_failure_time"))
    }
    labels = '{publisher="dc1",site="site-a"}'
    # What Prometheus would ingest: the temperature family gone, `code` dropped.
    assert ours == {
        "test_requests_total" + labels: 42.0,
        "up" + labels: 1.0,
        "scrape_duration_seconds" + labels: ours["scrape_duration_seconds" + labels],
        "scrape_samples_scraped" + labels: 2.0,
        "scrape_samples_post_metric_relabeling" + labels: 1.0,
        "scrape_series_added" + labels: ours["scrape_series_added" + labels],
    }
    big_pushed = group_samples(text, "node", "big")
    big_labels = '{publisher="dc1",site="site-b"}'
    # Six samples survive the rules (five distinct after labeldrop: the
    # collision is the store's to settle): over the limit of 3, up 0, no page.
    assert big_pushed["up" + big_labels] == 0
    assert not any(k.startswith("test_") for k in big_pushed), big_pushed
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="sample_limit") >= 1
    assert metric(preg, "poller_targets_dropped", poller_job="node") == 1
    assert metric(preg, "poller_targets", poller_job="node") == 2


async def test_more_targets_than_target_limit_fail_them_all(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    async with Target() as one, Target() as two:
        jobs = {
            "node": {
                "targets": [{"name": "one", "url": one.url}, {"name": "two", "url": two.url}],
                "relabel_configs": [{"target_label": "site", "replacement": "x"}],
                "target_limit": 1,
            }
        }
        cfg = poller_config(tmp_path, nats_server.url, jobs, scrape_interval="1s")
        poller, preg = new_poller(cfg)
        receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
        async with running(poller), running(receiver):

            def both_down() -> bool:
                text = pushgateway.metrics_text()
                up = 'up{publisher="dc1",site="x"}'
                return all(
                    group_samples(text, "node", name).get(up) == 0 for name in ("one", "two")
                )

            await async_wait_for(both_down, timeout=60, message="targets not up 0")
            errors = {t["name"]: t["last_error"] for t in poller.status()["targets"]}
        assert one.requests == 0 and two.requests == 0
    assert errors == {
        name: "target_limit exceeded (number of targets: 2, limit: 1)" for name in errors
    }
    assert len(errors) == 2
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="target_limit") >= 2
