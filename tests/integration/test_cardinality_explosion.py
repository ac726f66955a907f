"""Governance at the centre: a target that explodes in cardinality is capped by the series
budget, others keep flowing, and it is first in the top offenders of both roles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    poller_config,
    publish_scrape,
    receiver_config,
    running,
)
from prometheus_client import CollectorRegistry
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import PrometheusStore
from test_remote_write import rw_receiver
from test_status_page import render

from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.monitor import MonitorServer

BUDGET = 3000


def page(metric_name: str, series: int, value: float = 1.0) -> bytes:
    """A page of `series` series of one gauge."""
    lines = [f"# TYPE {metric_name} gauge"]
    lines += [f'{metric_name}{{id="{i}"}} {value}' for i in range(series)]
    return ("\n".join(lines) + "\n").encode()


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def monitor(role: Any) -> MonitorServer:
    server = MonitorServer(CollectorRegistry(), "127.0.0.1", 0, role)
    await server.start()
    return server


async def test_exploding_target_is_capped_at_the_centre_and_first_in_the_top(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    steady = Target(page("steady_metric", 500))
    exploding = Target(page("exploding_metric", 500))
    await steady.start()
    await exploding.start()
    poller, _ = new_poller(
        poller_config(
            tmp_path,
            nats_server.url,
            {
                "node": {
                    "targets": [
                        {"name": "steady", "url": steady.url},
                        {"name": "exploding", "url": exploding.url},
                    ]
                }
            },
            scrape_interval="1s",
        )
    )
    receiver, registry = new_receiver(
        receiver_config(
            tmp_path,
            nats_server.url,
            pushgateway.url,
            series_budget={"per_publisher": BUDGET},
        )
    )
    poller_monitor = await monitor(poller)
    receiver_monitor = await monitor(receiver)
    try:
        async with running(receiver), running(poller):

            def pushed(instance: str) -> dict[str, float]:
                return group_samples(pushgateway.metrics_text(), "node", instance)

            await async_wait_for(
                lambda: len(pushed("exploding")) >= 500 and len(pushed("steady")) >= 500,
                timeout=60,
                message="the 500-series pages never reached the Pushgateway",
            )
            # Another publisher, well within its own budget.
            await publish_scrape(nats_server.url, page("other_metric", 800), publisher="dc2")

            exploding.body = page("exploding_metric", 50_000)
            steady.body = page("steady_metric", 500, value=2.0)
            jumped_at = exploding.requests

            def capped() -> bool:
                return (
                    metric(
                        registry,
                        "receiver_series_over_budget_total",
                        publisher="dc1",
                        output="pushgateway",
                    )
                    > 0
                )

            await async_wait_for(capped, timeout=60, message="the budget never dropped a series")
            top = await get_json(f"http://127.0.0.1:{receiver_monitor.bound_port}/api/v1/top")
            # Within one interval: the first page over budget put it first.
            assert top["by_target"][0]["instance"] == "exploding", top
            assert top["by_target"][0]["series"] >= 50_000
            assert top["by_metric_name"][0]["metric"] == "exploding_metric", top
            assert top["by_publisher"][0]["publisher"] == "dc1"
            assert top["by_publisher"][0]["over_budget"] > 0
            assert top["churn"][0]["instance"] == "exploding", top
            assert exploding.requests - jumped_at <= 3, "not first within one interval"

            polled = await get_json(f"http://127.0.0.1:{poller_monitor.bound_port}/api/v1/top?n=2")
            assert polled["by_target"][0]["instance"] == "exploding", polled
            assert polled["by_metric_name"][0]["metric"] == "exploding_metric"
            assert len(polled["by_job"]) == 1

            # The status page's table, as a browser shows it.
            url = f"http://127.0.0.1:{receiver_monitor.bound_port}/"
            dom = await asyncio.to_thread(render, url, tmp_path / "chromium", 3000)
            assert "<td>target</td><td>dc1 node/exploding</td><td>5" in dom, dom[-3000:]
            assert "<td>metric</td><td>exploding_metric</td>" in dom

            await async_wait_for(
                lambda: pushed("steady").get('steady_metric{id="499",publisher="dc1"}') == 2.0,
                timeout=60,
                message="the steady target stopped flowing",
            )
            big = pushed("exploding")
            steady_now = pushed("steady")
            # Capped: the publisher holds no more than its budget (the Pushgateway
            # adds push_time_seconds and push_failure_time_seconds per group).
            series = len(big) + len(steady_now) - 4
            assert 500 < len(big) < 50_000
            assert series <= BUDGET + 6, series  # + up, scrape_* of each target
            assert 'up{publisher="dc1"}' in big
            # Existing series keep flowing: those of before the jump are all there.
            assert all(f'exploding_metric{{id="{i}",publisher="dc1"}}' in big for i in range(500))
            assert len([k for k in steady_now if k.startswith("steady_metric")]) == 500
            other = group_samples(pushgateway.metrics_text(), "node", "web-1")
            assert len([k for k in other if k.startswith("other_metric")]) == 800
            assert (
                metric(
                    registry,
                    "receiver_series_over_budget_total",
                    publisher="dc2",
                    output="pushgateway",
                )
                == 0
            )
    finally:
        await poller_monitor.stop()
        await receiver_monitor.stop()
        await steady.stop()
        await exploding.stop()


async def test_budget_drops_new_series_before_remote_write(
    tmp_path: Path, nats_server: NatsServer, prometheus_store: PrometheusStore
) -> None:
    cfg = rw_receiver(tmp_path, nats_server.url, prometheus_store.write_url)
    budget = SeriesBudgetConfig(per_job=(("node", 1000),))
    receiver, registry = new_receiver(replace(cfg, series_budget=budget))
    async with running(receiver):
        # The receiver creates the stream (with its own settings) before we publish.
        await async_wait_for(lambda: receiver.ready()[0], timeout=60, message="never ready")
        now = time.time()
        await publish_scrape(
            nats_server.url, page("rw_metric", 500), instance="big", scrape_time=now
        )
        await publish_scrape(
            nats_server.url, page("rw_metric", 5000), instance="big", scrape_time=now + 1
        )
        await publish_scrape(
            nats_server.url,
            page("rw_metric", 300),
            job="other",
            instance="small",
            scrape_time=now + 1,
        )

        async def stored(selector: str) -> float:
            found = await prometheus_store.query(f"count({selector})")
            return float(found[0]["value"][1]) if found else 0.0

        async def written() -> bool:
            await prometheus_store.flush()
            return (
                metric(
                    registry, "receiver_series_over_budget_total", publisher="dc1", output="store"
                )
                == 4000
                and await stored('{job="node",instance="big"}') == 1000
                and await stored('{job="other"}') == 300
            )

        await async_wait_for(written, timeout=60, message="not capped at 1000 for job node")
