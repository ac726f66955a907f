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

if TYPE_CHECKING:
    from prometheus_streams.receiver.app import Receiver

# How long a remote-write lane's leader may be silent before another receiver
# takes over (the lease's time to live).
LEASE_TTL = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def remote_write_durable(durable: str, name: str) -> str:
    """The durable consumer of the remote-write output `name`: its own, beside the Pushgateway's."""
    return f"{durable}-rw-{_UNSAFE.sub('_', name)}"


def build_lanes(role: Receiver, config: Config, registry: CollectorRegistry) -> list[Lane]:
    """A lane per configured output: the Pushgateway's first (it keeps the durable name)."""
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
    if config.remote_write:
        metrics = RemoteWriteMetrics(registry)
        holder = f"{config.identity} {socket.gethostname()} {os.getpid()}"
        for rw in config.remote_write:
            durable = remote_write_durable(stream.durable, rw.name)
            lease = Lease(
                lambda: role.conn.js,
                f"{_UNSAFE.sub('_', stream.stream)}.{durable}",
                holder,
                ttl=LEASE_TTL,
                replicas=stream.replicas,
            )
            child = metrics.pending.labels(rw.name)
            lane = Lane(
                role, replace(stream, durable=durable), not lanes, lease, on_pending=child.set
            )
            lane.output = RemoteWriteOutput(config, rw, metrics, lane.context())
            lanes.append(lane)
    return lanes
