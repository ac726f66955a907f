"""Run the real poller and receiver in-process against the fixture servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import nats
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from prometheus_streams import config, wire
from prometheus_streams.poller.app import Poller
from prometheus_streams.receiver.app import Receiver

TOPIC = "prometheus"


class Role(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    """Write a YAML config for the real loader to read."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def poller_config(
    tmp_path: Path,
    nats_url: str,
    jobs: dict[str, Any],
    identity: str = "dc1",
    **extra: Any,
) -> config.Config:
    """A poller config scraping `jobs` every 300ms."""
    data: dict[str, Any] = {
        "identity": identity,
        "scrape_interval": "300ms",
        "poller_stream": {"urls": nats_url, "topic": TOPIC},
        "jobs": jobs,
        "shutdown_grace": "5s",
    }
    data.update(extra)
    return config.load(write_config(tmp_path, data, f"poller-{abs(hash(identity))}.yaml"))


def receiver_config(
    tmp_path: Path,
    nats_url: str,
    pushgateway_url: str,
    name: str = "central",
    **extra: Any,
) -> config.Config:
    """A receiver config with the publisher label on."""
    stream = {"urls": nats_url, "topic": TOPIC, "client_id": "receiver", "fetch_batch": 16}
    stream.update(extra.pop("stream", {}))
    data: dict[str, Any] = {
        "identity": name,
        "receiver_stream": stream,
        "push_gateway": {"url": pushgateway_url, "publisher_label": True, "timeout": "2s"},
        "shutdown_grace": "5s",
    }
    data.update(extra)
    return config.load(write_config(tmp_path, data, f"receiver-{name}.yaml"))


@asynccontextmanager
async def running(role: Role) -> AsyncIterator[None]:
    """Run a role until the block ends, then stop it as SIGTERM would."""
    stop = asyncio.Event()
    task = asyncio.create_task(role.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


def new_poller(cfg: config.Config) -> tuple[Poller, CollectorRegistry]:
    """A poller with its own registry."""
    registry = CollectorRegistry()
    return Poller(cfg, registry), registry


def new_receiver(cfg: config.Config) -> tuple[Receiver, CollectorRegistry]:
    """A receiver with its own registry."""
    registry = CollectorRegistry()
    return Receiver(cfg, registry), registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A metric value, 0 when absent."""
    return registry.get_sample_value(name, labels) or 0.0


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A prometheus_streams_<name> value, 0 when absent."""
    return sample(registry, "prometheus_streams_" + name, **labels)


def group_samples(text: str, job: str, instance: str) -> dict[str, float]:
    """`name{labels}` -> value for the series of one pushed group in /metrics text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("job") == job and s.labels.get("instance") == instance:
                rest = {k: v for k, v in sorted(s.labels.items()) if k not in ("job", "instance")}
                key = s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in rest.items()) + "}")
                found[key] = s.value
    return found


async def publish_raw(
    nats_url: str,
    subject: str,
    payload: bytes,
    headers: dict[str, str] | None = None,
    stream: str = "PROMETHEUS",
) -> None:
    """Publish straight into the stream, creating it as the receiver would."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(name=stream, subjects=[f"{TOPIC}.>"])
            except nats.js.errors.BadRequestError:
                # The receiver made it between the two calls (with its own
                # settings): use that one.
                await js.stream_info(stream)
        await js.publish(subject, payload, headers=headers, stream=stream)
    finally:
        await nc.close()


async def publish_scrape(
    nats_url: str,
    body: bytes,
    publisher: str = "dc1",
    job: str = "node",
    instance: str = "web-1",
    scrape_time: float | None = None,
) -> None:
    """Publish a well-formed scrape as a poller would."""
    ms = int((time.time() if scrape_time is None else scrape_time) * 1000)
    scrape = wire.Scrape(publisher, job, instance, ms, body)
    subject, payload, headers = wire.encode(TOPIC, scrape)
    await publish_raw(nats_url, subject, payload, headers)


def only_up_0(pushed: dict[str, float], publisher: str = "dc1") -> bool:
    """Whether a group (from group_samples) holds the health series alone, with up 0.

    The receiver leaves a group so when its page could not be pushed. The
    Pushgateway's own push_time_seconds and push_failure_time_seconds are
    not counted.
    """
    label = f'{{publisher="{publisher}"}}'
    health = {name + label for name in ("up", "scrape_duration_seconds", "scrape_samples_scraped")}
    ours = {k for k in pushed if not k.startswith(("push_time_seconds", "push_failure_time"))}
    return ours == health and pushed["up" + label] == 0
