"""A Prometheus job pasted under `scrape_configs:`: real poller, real Pushgateway."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml
from harness import group_samples, new_poller, new_receiver, poller_config, receiver_config, running
from servers import NatsServer, Pushgateway, Target, async_wait_for

# As a user would paste it from prometheus.yml (only the addresses are the test's).
PASTED = """
scrape_configs:
  - job_name: 'node'
    scrape_interval: 1s
    static_configs:
      - targets: ['PRIMARY']
        labels:
          env: prod
      - targets: ['STANDBY']
        labels:
          env: prod
          role: standby
    relabel_configs:
      - source_labels: [role]
        regex: standby
        action: drop
      - source_labels: [env]
        target_label: environment
      - regex: env
        action: labeldrop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'test_temperature_.*'
        action: drop
      - source_labels: [code]
        regex: '2..'
        target_label: class
        replacement: success
"""


def _address(target: Target) -> str:
    return urlsplit(target.url).netloc


async def test_a_pasted_prometheus_job_reaches_the_pushgateway(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    async with Target() as primary, Target() as standby:
        text = PASTED.replace("PRIMARY", _address(primary))
        text = text.replace("STANDBY", _address(standby))
        pasted = yaml.safe_load(text)
        cfg = poller_config(tmp_path, nats_server.url, {}, **pasted)
        assert cfg.warnings == ()
        poller, _ = new_poller(cfg)
        receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
        instance = _address(primary)
        async with running(poller), running(receiver):
            await async_wait_for(
                lambda: group_samples(pushgateway.metrics_text(), "node", instance),
                timeout=60,
                message="the pasted job's target was not pushed",
            )
            pushed = pushgateway.metrics_text()
        assert standby.requests == 0
    ours = group_samples(pushed, "node", instance)
    labels = 'environment="prod",publisher="dc1"'
    # What Prometheus would ingest: the temperature family dropped, the rules applied.
    assert ours['test_requests_total{class="success",code="200",' + labels + "}"] == 42.0
    assert ours["up{" + labels + "}"] == 1.0
    assert ours["scrape_samples_post_metric_relabeling{" + labels + "}"] == 1.0
    assert not any(key.startswith("test_temperature") for key in ours), ours
