"""Everything that speaks NATS: the connection, stream provisioning, the JetStream pull loop."""

from prometheus_streams.transport.connection import (
    Connection,
    ConnectionMetrics,
    nats_auth_options,
)
from prometheus_streams.transport.puller import Puller, num_pending, status_is_error
from prometheus_streams.transport.streams import bind_stream, ensure_stream

__all__ = [
    "Connection",
    "ConnectionMetrics",
    "Puller",
    "bind_stream",
    "ensure_stream",
    "nats_auth_options",
    "num_pending",
    "status_is_error",
]
