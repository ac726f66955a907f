"""The headers an HA poller's messages carry: its replica name and lease term."""

from __future__ import annotations

from prometheus_streams import wire

# A replica name travels in a metric label and the logs: keep it short.
MAX_REPLICA_CHARS = 253
# A term token is a JetStream sequence number: 1 to 2**64 - 1.
MAX_TERM_DIGITS = 20


def replica_of(headers: dict[str, str] | None) -> str | None:
    """The HA replica a message names (None: not from an HA poller); raises wire.WireError."""
    if not headers:
        return None
    replica = headers.get(wire.H_REPLICA)
    if replica is None:
        return None
    if not replica or len(replica) > MAX_REPLICA_CHARS or not replica.isprintable():
        raise wire.WireError(
            "bad_header",
            f"bad {wire.H_REPLICA} {replica[:64]!r}: needs 1 to {MAX_REPLICA_CHARS}"
            " printable characters",
        )
    return replica


def term_of(headers: dict[str, str] | None) -> int:
    """The lease term (fencing token) an HA replica's message presents, 0 for none.

    Raises wire.WireError for a value that is not a positive decimal number.
    """
    raw = (headers or {}).get(wire.H_TERM)
    if raw is None:
        return 0
    if not (0 < len(raw) <= MAX_TERM_DIGITS and raw.isascii() and raw.isdigit()):
        raise wire.WireError(
            "bad_header", f"bad {wire.H_TERM} {raw[:64]!r}: needs a positive decimal number"
        )
    token = int(raw)
    if token <= 0 or token >= 2**64:
        raise wire.WireError(
            "bad_header", f"bad {wire.H_TERM} {raw[:64]!r}: needs a number from 1 to 2**64 - 1"
        )
    return token
