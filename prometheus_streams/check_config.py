"""What `check-config` prints: the resolved configuration as plain data, secrets never shown."""

from __future__ import annotations

from typing import Any

from prometheus_streams.config import ROLES, Config, RemoteWriteConfig, StreamConfig, TLSConfig
from prometheus_streams.config.budget import describe_series_budget
from prometheus_streams.config.ha import describe_ha
from prometheus_streams.config.jobs import LIMIT_KEYS
from prometheus_streams.config.publishers import describe_publishers
from prometheus_streams.config.scrape_http import describe_client
from prometheus_streams.secret import redact_url
from prometheus_streams.wire import escape_token


def describe_tls(tls: TLSConfig | None) -> dict[str, Any] | None:
    """The TLS settings and the files they resolve to."""
    if tls is None:
        return None
    return {
        "scheme": tls.scheme,
        "identity": tls.identity,
        "ca": tls.ca_file,
        "cert": tls.cert_file,
        "key": tls.key_file,
    }


def describe_stream(s: StreamConfig | None) -> dict[str, Any] | None:
    """One stream section, its URLs without user info."""
    if s is None:
        return None
    return {
        "urls": [redact_url(url) for url in s.urls],
        "topic": s.topic,
        "subjects": s.subjects,
        "stream": s.stream,
        "durable": s.durable,
        "replicas": s.replicas,
        "storage": s.storage,
        "stream_max_age_seconds": s.stream_max_age,
        "stream_max_bytes": s.stream_max_bytes,
        "max_msgs_per_subject": s.max_msgs_per_subject,
        "fetch_batch": s.fetch_batch,
        "ack_wait_seconds": s.ack_wait,
        **describe_topology(s),
        "tls": describe_tls(s.tls),
        "auth": "none" if s.auth is None else s.auth.describe(),
    }


def describe_topology(s: StreamConfig) -> dict[str, Any]:
    """Which JetStream domain serves the stream and, for a central stream, what it sources."""
    if s.domain is None and not s.sources:
        return {}
    where = f"JetStream domain {s.domain}" if s.domain else "the servers' own JetStream"
    found: dict[str, Any] = {"domain": s.domain, "jetstream_api": s.api_prefix}
    if s.publisher is not None:
        found["explained"] = (
            f"edge stream {s.stream} in {where}: a scrape is stored there once acked,"
            f" taking {s.subjects} only"
        )
    if s.sources:
        found["sources"] = [
            {
                "stream": source.name,
                "jetstream_api": source.api or s.api_prefix,
                "deliver_prefix": source.deliver_prefix,
                "takes": f"{s.topic}.{escape_token(source.publisher)}.>"
                if source.publisher
                else f"{s.subjects} (any publisher: set publisher to bind it to one)",
            }
            for source in s.sources
        ]
        found["explained"] = (
            f"central stream {s.stream} in {where}, no subjects of its own, built from"
            f" {len(s.sources)} datacenter stream(s); consumer {s.durable} reads {s.subjects}"
        )
    return found


def describe_outputs(config: Config) -> list[str]:
    """The receiver's outputs in one line each: where to, and how it logs in."""
    outputs = []
    if config.push_gateway is not None:
        push = config.push_gateway
        outputs.append(f"pushgateway {redact_url(push.url)} ({push.describe_auth()})")
    outputs.extend(
        f"remote_write {rw.name} → {rw.url} ({rw.describe_auth()})" for rw in config.remote_write
    )
    return outputs


def describe_remote_write(rw: RemoteWriteConfig) -> dict[str, Any]:
    """One remote_write destination; header values are not shown (they may hold keys)."""
    return {
        "name": rw.name,
        "url": redact_url(rw.url),
        "headers": [name for name, _ in rw.headers],
        "auth": rw.describe_auth(),
        "tls": None
        if rw.tls_server_name is None
        else {
            "ca": rw.ca,
            "cert": rw.cert_file,
            "key": rw.key_file,
            "server_name": rw.tls_server_name,
            "insecure_skip_verify": rw.insecure_skip_verify,
            "min_version": rw.min_version or "TLS12",
            "max_version": rw.max_version,
        },
        "remote_timeout_seconds": rw.remote_timeout,
        "max_samples_per_send": rw.max_samples_per_send,
        "batch_send_deadline_seconds": rw.batch_send_deadline,
        "min_backoff_seconds": rw.min_backoff,
        "max_backoff_seconds": rw.max_backoff,
    }


def describe(config: Config) -> dict[str, Any]:
    """The resolved configuration as plain data, for check-config."""
    return {
        "identity": config.identity,
        "log_level": "debug" if config.debug else "info",
        "logfile": config.logfile,
        "max_age_seconds": config.max_age,
        "monitor": f"{config.monitor_address}:{config.monitor_port}"
        if config.monitor_port
        else "disabled",
        "jobs": {
            job.name: {
                "scrape_interval_seconds": job.scrape_interval,
                "scrape_timeout_seconds": job.scrape_timeout,
                "body_size_limit_bytes": job.body_size_limit,
                "honor_labels": job.honor_labels,
                "targets": {t.name: redact_url(t.url) for t in job.targets},
                "auth": describe_client(job),
                "discovery": [f"file {' '.join(sd.files)}" for sd in job.file_sd]
                + [sd.url for sd in job.http_sd]
                + [f"dns {d.type} {' '.join(d.names)}" for d in job.dns_sd],
                "relabel_configs": len(job.relabel_configs),
                "metric_relabel_configs": len(job.metric_relabel_configs),
                "limits": {k: getattr(job, k) for k in LIMIT_KEYS if getattr(job, k)},
            }
            for job in config.jobs
        },
        "poller_stream": describe_stream(config.poller_stream),
        "receiver_stream": describe_stream(config.receiver_stream),
        "push_gateway": None
        if config.push_gateway is None
        else {
            "url": redact_url(config.push_gateway.url),
            "publisher_label": config.push_gateway.publisher_label,
            "timeout_seconds": config.push_gateway.timeout,
            "concurrency": config.push_gateway.concurrency,
            "stale_after_seconds": config.push_gateway.stale_after,
            "stale_check_interval_seconds": config.push_gateway.stale_check_interval,
            "stale_publishers": list(config.push_gateway.stale_publishers),
            "ca": config.push_gateway.ca,
            "insecure_skip_verify": config.push_gateway.insecure_skip_verify,
            "auth": config.push_gateway.describe_auth(),
        },
        "remote_write": [describe_remote_write(rw) for rw in config.remote_write],
        "publisher_label": config.publisher_label,
        "outputs": describe_outputs(config),
        "limits": {
            "max_line_length_bytes": config.max_line_length,
            "max_label_count": config.max_label_count,
        },
        "series_budget": describe_series_budget(config.series_budget),
        "ha": describe_ha(config.ha),
        "publishers": describe_publishers(
            config.ha_backstop, config.expected_publishers, config.publisher_stale_after
        ),
        "fit_for": [role for role in ROLES if not config.problems_for(role)],
    }
