"""What we do to exposition text: count samples, add health series, strip timestamps."""

from __future__ import annotations

import re

HEALTH_FAMILIES = (b"up", b"scrape_duration_seconds", b"scrape_samples_scraped")

# A sample line is `name[{labels}] value [timestamp]`. A label value may hold
# spaces, but the value right before a timestamp always follows `}` or a name
# character, and neither value nor timestamp can contain a quote, so matching
# from the end of the line cannot mistake the inside of a label for them.
_VALUE = rb"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.|Inf|inf|NaN|nan)"
_TIMESTAMP_LINE = re.compile(
    rb"^([^#\s][^\n]*?[}\w:][ \t]+" + _VALUE + rb")[ \t]+-?[0-9]+[ \t]*$",
    re.MULTILINE,
)


def count_samples(body: bytes) -> int:
    """Count sample lines without parsing them (comments and blank lines skipped)."""
    count = 0
    for line in body.split(b"\n"):
        stripped = line.lstrip()
        if stripped and not stripped.startswith(b"#"):
            count += 1
    return count


def strip_timestamps(body: bytes) -> tuple[bytes, int]:
    """Remove sample timestamps (the Pushgateway refuses them); return body and count."""
    return _TIMESTAMP_LINE.subn(rb"\1", body)


def health_series(up: bool, duration: float, samples: int) -> bytes:
    """The series Prometheus adds to every scrape, so the central side sees target health."""
    return (
        b"# TYPE up gauge\n"
        + f"up {1 if up else 0}\n".encode()
        + b"# TYPE scrape_duration_seconds gauge\n"
        + f"scrape_duration_seconds {duration:.6f}\n".encode()
        + b"# TYPE scrape_samples_scraped gauge\n"
        + f"scrape_samples_scraped {samples}\n".encode()
    )


def with_health(body: bytes, duration: float, samples: int) -> bytes:
    """A successful scrape's body followed by its health series."""
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return body + health_series(True, duration, samples)
