"""Reading a config file: YAML, every section's rules, the rules across sections."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import yaml

from prometheus_streams.config.budget import read_series_budget
from prometheus_streams.config.ha import read_ha
from prometheus_streams.config.jobs import read_job_defaults, read_jobs
from prometheus_streams.config.management import (
    TOP_KEYS,
    read_management,
    read_top_level,
    shared_identity,
)
from prometheus_streams.config.model import SELF_JOB, Config
from prometheus_streams.config.nats import read_stream
from prometheus_streams.config.publishers import (
    read_expected_publishers,
    read_ha_backstop,
    read_publisher_stale_after,
)
from prometheus_streams.config.pushgateway import read_push_gateway
from prometheus_streams.config.reader import Reader, Section
from prometheus_streams.config.remote_write import read_publisher_label, read_remote_write
from prometheus_streams.config.scrape_configs import read_scrape_configs
from prometheus_streams.config.tls import read_tls
from prometheus_streams.config.values import as_name
from prometheus_streams.errors import ConfigError


def load(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text: {exc.reason}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown place)"
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{name}: {where}: invalid YAML: {reason}"]) from None
    return parse(raw, name)


def parse(raw: object, path: str) -> Config:
    """Validate raw YAML data; raise ConfigError listing every problem."""
    reader = Reader(path)
    top = reader.root(raw)
    if top is None:
        raise ConfigError(reader.problems)
    config = _sections(top, path)
    _check_across_sections(top, config)
    if reader.problems:
        raise ConfigError(reader.problems)
    return dataclasses.replace(config, warnings=tuple(reader.warnings))


def _sections(top: Section, path: str) -> Config:
    """Every section, read in a fixed order so that problems are listed in a stable order."""
    top.check_keys(TOP_KEYS)
    # The OS host name, as the original: getfqdn() is `localhost` on many hosts.
    identity = top.get("identity", as_name, "") or socket.gethostname()
    defaults = read_job_defaults(top)
    tls = read_tls(top, identity) if "tls" in top else None
    top_level = read_top_level(top)
    jobs = read_jobs(top, defaults)
    jobs += read_scrape_configs(top, defaults, {job.name for job in jobs})
    return Config(
        path=path,
        identity=identity,
        scrape_interval=defaults.scrape_interval,
        scrape_timeout=defaults.scrape_timeout,
        body_size_limit=defaults.body_size_limit,
        **top_level,
        jobs=jobs,
        poller_stream=read_stream(top, "poller_stream", identity, tls),
        receiver_stream=read_stream(top, "receiver_stream", identity, tls),
        push_gateway=read_push_gateway(top),
        remote_write=read_remote_write(top),
        publisher_label=read_publisher_label(top),
        series_budget=read_series_budget(top),
        ha_backstop=read_ha_backstop(top),
        expected_publishers=read_expected_publishers(top),
        publisher_stale_after=read_publisher_stale_after(top),
        tls=tls,
        management=read_management(top, identity, tls),
        ha=read_ha(top, top_level["monitor_port"]),
    )


def _check_across_sections(top: Section, config: Config) -> None:
    """The rules that tie one section to another."""
    shared = shared_identity(config.identity)
    if shared:
        top.warn("identity", shared)
    push = config.push_gateway
    stream = config.receiver_stream
    if push is not None and stream is not None:
        rounds = -(-stream.fetch_batch // push.concurrency)
        if stream.ack_wait < push.timeout * rounds:
            top.warn(
                "receiver_stream.ack_wait",
                f"{stream.ack_wait:g}s is shorter than a slow batch may take "
                f"({rounds} rounds of push_gateway.timeout {push.timeout:g}s): messages "
                "could be redelivered while still queued; raise it or lower fetch_batch",
            )
    _check_remote_write(top, config)
    if push is not None and push.stale_after and not push.publisher_label:
        top.problem(
            "push_gateway.stale_after",
            "needs publisher_label: true, or the receiver could not tell its groups from "
            "groups other clients push, and would delete them",
        )
    if push is not None and push.stale_publishers and not push.stale_after:
        top.warn("push_gateway.stale_publishers", "has no effect without stale_after")
    if any(job.name == SELF_JOB for job in config.jobs) and config.monitor_port:
        top.problem(f"jobs.{SELF_JOB}", "reserved for the poller's own metrics (monitor_port)")


def _check_remote_write(top: Section, config: Config) -> None:
    """The remote_write rules that involve other sections."""
    if top.given("publisher_label") and not config.remote_write:
        top.warn(
            "publisher_label",
            "used by remote_write only; the Pushgateway's grouping label stays publisher",
        )
    stream = config.receiver_stream
    slowest = max(config.remote_write, key=lambda rw: rw.remote_timeout, default=None)
    if stream is not None and slowest is not None and stream.ack_wait < slowest.remote_timeout:
        top.warn(
            "receiver_stream.ack_wait",
            f"{stream.ack_wait:g}s is shorter than remote_write {slowest.name}'s "
            f"remote_timeout {slowest.remote_timeout:g}s: messages could be redelivered "
            "while their request is still waiting; raise ack_wait",
        )
    if stream is not None and config.remote_write:
        # The stream is what remote write catches up from after an outage.
        keeps = stream.stream_max_age
        if config.max_age and keeps < config.max_age:
            top.warn(
                "receiver_stream.stream_max_age",
                f"{keeps:g}s is shorter than max_age {config.max_age:g}s: remote write can "
                "catch up only on what the stream still holds; raise stream_max_age",
            )
