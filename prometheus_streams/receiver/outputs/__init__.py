"""Where the receiver stores scrapes: one module per kind of output (see receiver/output.py)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import replace
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from prometheus_streams.config import Config
from prometheus_streams.receiver.lane import Lane
from prometheus_streams.receiver.outputs.pushgateway import PushgatewayOutput
from prometheus_streams.receiver.outputs.remote_write import RemoteWriteMetrics, RemoteWriteOutput
from prometheus_streams.transport.lease import Lease
from prometheus_streams.transport.share import Share

if TYPE_CHECKING:
    from prometheus_streams.receiver.app import Receiver

# How long a remote-write lane's leader may be silent before another receiver
# takes over (the lease's time to live).
LEASE_TTL = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def remote_write_durable(durable: str, name: str) -> str:
    """The durable consumer of the remote-write output `name`: its own, beside the Pushgateway's."""
    return f"{durable}-rw-{_UNSAFE.sub('_', name)}"


def build_lanes(
    role: Receiver, config: Config, registry: CollectorRegistry
) -> tuple[list[Lane], list[Share]]:
    """A lane per output (per partition of a remote-write output), the Pushgateway's first
    (it keeps the durable name); and the lease shares of partitioned outputs."""
    stream = config.receiver_stream
    assert stream is not None
    if config.remote_write:
        # Every scrape of max_age must stay on the stream for remote write, not
        # only the newest per target: no per-subject limit (max_age and
        # max_bytes of the stream still bound it).
        stream = replace(stream, max_msgs_per_subject=-1, history=True)
    lanes: list[Lane] = []
    if config.push_gateway is not None:
        lane = Lane(role, stream, first=True)
        lane.output = PushgatewayOutput(config, registry, lane.context())
        lanes.append(lane)
    shares: list[Share] = []
    if config.remote_write:
        metrics = RemoteWriteMetrics(registry)
        holder = f"{config.identity} {socket.gethostname()} {os.getpid()}"
        for rw in config.remote_write:
            base = remote_write_durable(stream.durable, rw.name)
            prefix = f"{_UNSAFE.sub('_', stream.stream)}.{base}"
            share = Share(lambda: role.conn.js, prefix, holder, LEASE_TTL, replicas=stream.replicas)
            outputs: list[RemoteWriteOutput] = []
            parts: list[Lane] = []
            for k in range(rw.partitions):
                durable = base if rw.partitions == 1 else f"{base}-p{k}"
                lease = Lease(
                    lambda: role.conn.js,
                    f"{_UNSAFE.sub('_', stream.stream)}.{durable}",
                    holder,
                    ttl=LEASE_TTL,
                    replicas=stream.replicas,
                )
                share.add(lease)
                lane = Lane(
                    role,
                    replace(stream, durable=durable),
                    not lanes,
                    lease,
                    on_pending=lambda _: None,
                    partition=(k, rw.partitions),
                )
                output = RemoteWriteOutput(config, rw, metrics, lane.context())
                output.partition = (k, rw.partitions)
                lane.output = output
                outputs.append(output)
                parts.append(lane)
                lanes.append(lane)
            _aggregate(metrics, rw.name, outputs, parts)
            if rw.partitions > 1:
                shares.append(share)
    return lanes, shares


def _aggregate(
    metrics: RemoteWriteMetrics, name: str, outputs: list[RemoteWriteOutput], lanes: list[Lane]
) -> None:
    """One output's gauges over its partitions: read when /metrics is collected."""
    metrics.leading.labels(name).set_function(
        lambda: float(sum(1 for output in outputs if output.ctx.fence()))
    )
    metrics.lag.labels(name).set_function(lambda: max(output.lag() for output in outputs))
    metrics.pending.labels(name).set_function(
        lambda: float(sum(max(0, lane.consumer.pending) for lane in lanes))
    )
