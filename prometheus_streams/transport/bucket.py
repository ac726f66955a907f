"""The key-value bucket the leases live in, and the clock they are fenced by."""

from __future__ import annotations

import time

from nats.errors import Error as NATSError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

BUCKET = "prometheus-streams-leases"
_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def fence_clock() -> float:
    """Seconds on a clock that never steps and keeps counting through a suspend."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


# The value a holder leaves when it gives the lease up after settling its work.
RELEASED = b"released"


async def open_bucket(
    js: JetStreamContext, bucket: str, ttl: float, replicas: int, history: int = 1
) -> KeyValue:
    """The key-value bucket `bucket`, created if missing (keys kept `ttl` after a write)."""
    try:
        return await js.key_value(bucket)
    except (NotFoundError, NATSError):
        return await js.create_key_value(
            js_api.KeyValueConfig(bucket=bucket, ttl=ttl, history=history, replicas=replicas)
        )
