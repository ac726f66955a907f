"""How the poller scrapes: encodings, timeouts, its own job."""

from __future__ import annotations

from pathlib import Path

import nats
from harness import TOPIC, metric, new_poller, poller_config, running
from servers import NatsServer, Target, async_wait_for

from prometheus_streams import wire


async def _last_scrape(nats_url: str, job: str, instance: str) -> wire.Scrape | None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        subject = wire.subject_for(TOPIC, "dc1", job, instance)
        try:
            msg = await js.get_last_msg("PROMETHEUS", subject)
        except nats.js.errors.NotFoundError:
            return None
        assert msg.data is not None
        return wire.decode(TOPIC, subject, msg.data, msg.headers, 1 << 24)
    finally:
        await nc.close()


async def _wait_last_scrape(nats_url: str, job: str, instance: str) -> wire.Scrape:
    found: list[wire.Scrape] = []

    async def probe() -> bool:
        scrape = await _last_scrape(nats_url, job, instance)
        if scrape is not None:
            found.append(scrape)
        return scrape is not None

    await async_wait_for(probe, message=f"nothing published for {job}/{instance}")
    return found[-1]


async def test_gzip_encoded_target_is_decoded_before_publishing(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.content_encoding = "gzip"
    jobs = {"node": {"targets": [{"name": "zipped", "url": target.url}]}}
    poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    async with running(poller):
        scrape = await _wait_last_scrape(nats_server.url, "node", "zipped")
    assert b'test_requests_total{code="200"} 42' in scrape.body
    assert b"\nup 1\n" in scrape.body
    assert b"scrape_samples_scraped 2\n" in scrape.body
    assert "gzip" in target.headers_seen[0].get("Accept-Encoding", "")


async def test_hanging_target_times_out_and_shows_up_0(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.delay = 3600  # a target that never answers
    jobs = {
        "slow": {
            "scrape_interval": "1s",
            "scrape_timeout": "300ms",
            "targets": [{"name": "hung", "url": target.url}],
        }
    }
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    async with running(poller):
        scrape = await _wait_last_scrape(nats_server.url, "slow", "hung")
        await async_wait_for(
            lambda: metric(preg, "poller_scrapes_total", poller_job="slow", result="timeout") >= 1
        )
    assert b"\nup 0\n" in scrape.body
    duration = float(scrape.body.split(b"\nscrape_duration_seconds ")[1].split(b"\n")[0])
    assert 0.3 <= duration < 5, "the scrape was not cut at its timeout"


async def test_target_own_up_series_is_replaced(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.body = b"# TYPE up gauge\nup 1\n# TYPE other gauge\nother 2\n"
    jobs = {"fed": {"targets": [{"name": "t", "url": target.url}]}}
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    async with running(poller):
        scrape = await _wait_last_scrape(nats_server.url, "fed", "t")
    assert scrape.body.count(b"# TYPE up gauge") == 1
    assert b"other 2\n" in scrape.body
    assert metric(preg, "poller_replaced_health_lines_total", poller_job="fed") >= 2
