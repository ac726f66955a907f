"""The same job given to Prometheus 2.42 and to the poller: the same series, the same `up`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import new_poller, new_receiver, poller_config, receiver_config, running
from prometheus_client.parser import text_string_to_metric_families
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import PrometheusStore

PAGE = (
    b"# HELP app_requests_total Requests.\n"
    b"# TYPE app_requests_total counter\n"
    b'app_requests_total{code="200",path="/a"} 5\n'
    b'app_requests_total{code="503",path="/b"} 1\n'
    b"# TYPE app_temperature gauge\n"
    b'app_temperature{room="a \\"b\\" \\\\ c"} 21.5\n'
    b"# TYPE go_goroutines gauge\n"
    b"go_goroutines 12\n"
    b"# TYPE process_open_fds gauge\n"
    b"process_open_fds 7\n"
)
BIG = PAGE + b"".join(b'app_extra{n="%d"} 1\n' % n for n in range(10))
RELABEL: list[dict[str, Any]] = [
    {"source_labels": ["tier"], "regex": "front|back", "action": "keep"},
    {"source_labels": ["__address__"], "regex": "(.*):(.*)", "target_label": "__tmp_port",
     "replacement": "$2"},
    {"source_labels": ["tier", "__tmp_port"], "separator": "-", "target_label": "slot"},
    {"source_labels": ["tier"], "target_label": "tier", "action": "uppercase"},
]  # fmt: skip
METRIC_RELABEL: list[dict[str, Any]] = [
    {"source_labels": ["__name__"], "regex": "go_.*|process_.*", "action": "drop"},
    {"regex": "path", "action": "labeldrop"},
    {"source_labels": ["code"], "regex": "(\\d)\\d\\d", "target_label": "class",
     "replacement": "${1}xx"},
]  # fmt: skip
HEALTH = ("up", "scrape_", "push_time_seconds", "push_failure_time_seconds")


def _ours(text: str) -> dict[frozenset[tuple[str, str]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("job") == "j" and not s.name.startswith(HEALTH):
                labels = {k: v for k, v in s.labels.items() if k != "publisher"}
                found[frozenset({**labels, "__name__": s.name}.items())] = s.value
    return found


def _up(text: str) -> dict[str, float]:
    return {
        s.labels["instance"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "up" and s.labels.get("job") == "j"
    }


async def test_prometheus_and_the_poller_ingest_the_same_series(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    async with Target(PAGE) as front, Target(BIG) as back, Target(PAGE) as other:
        tiers = {front: "front", back: "back", other: "other"}
        address = {t: t.url.split("//")[1].split("/")[0] for t in tiers}
        prometheus = PrometheusStore(
            tmp_path / "prom",
            scrape_configs=[
                {
                    "job_name": "j",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [
                        {"targets": [address[t]], "labels": {"tier": tier}}
                        for t, tier in tiers.items()
                    ],
                    "relabel_configs": RELABEL,
                    "metric_relabel_configs": METRIC_RELABEL,
                    "sample_limit": 8,
                }
            ],
        )
        jobs = {
            "j": {
                "targets": [{"url": t.url, "labels": {"tier": tier}} for t, tier in tiers.items()],
                "relabel_configs": RELABEL,
                "metric_relabel_configs": METRIC_RELABEL,
                "sample_limit": 8,
            }
        }
        poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs, scrape_interval="1s"))
        receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
        prometheus.start()
        try:
            async with running(poller), running(receiver):

                def pushed() -> str | None:
                    text = pushgateway.metrics_text()
                    return text if len(_up(text)) == 2 else None

                text = await async_wait_for(pushed, timeout=60, message="nothing pushed")

                async def scraped() -> list[dict[str, Any]] | None:
                    ups = await prometheus.query('up{job="j"}')
                    return ups if len(ups) == 2 else None

                ups = await async_wait_for(scraped, timeout=60, message="Prometheus: no up")
                stored = await prometheus.query('{job="j", __name__!~"up|scrape_.*"}')
        finally:
            prometheus.close()
        assert other.requests == 0
    theirs = {frozenset(s["metric"].items()): float(s["value"][1]) for s in stored}
    assert _ours(text) == theirs, (sorted(map(sorted, theirs)), sorted(map(sorted, _ours(text))))
    assert theirs  # the front target's series; the back one is over sample_limit
    assert _up(text) == {u["metric"]["instance"]: float(u["value"][1]) for u in ups}
    assert _up(text) == {address[front]: 1.0, address[back]: 0.0}
