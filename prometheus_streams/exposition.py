"""What we do to exposition text: count samples, add health series, strip timestamps."""

from __future__ import annotations

import functools
import re

HEALTH_FAMILIES = (b"up", b"scrape_duration_seconds", b"scrape_samples_scraped")

# A sample line is `name[{labels}] value [timestamp]`. A label value may hold
# spaces, but the value right before a timestamp always follows `}` or a name
# character, and neither value nor timestamp can contain a quote, so matching
# from the end of the line cannot mistake the inside of a label for them.
_VALUE = rb"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.|Inf|inf|NaN|nan)"
_TIMESTAMP_LINE = re.compile(
    rb"^([^#\s](?:[^\n]*?[}\w:])?[ \t]+" + _VALUE + rb")[ \t]+-?[0-9]+[ \t\r]*$",
    re.MULTILINE,
)


def count_samples(body: bytes) -> int:
    """Count sample lines without parsing them (comments and blank lines skipped)."""
    if not body:
        return 0
    if (
        b"\n\n" in body
        or b"\n " in body
        or b"\n\t" in body
        or b"\r" in body
        or body[:1] in b" \t\n"
    ):
        # Blank or indented lines: rare, counted exactly the slow way.
        return sum(1 for ln in body.split(b"\n") if (s := ln.strip()) and not s.startswith(b"#"))
    # Byte counts run in C at GB/s; a per-line Python loop would be the poller's
    # biggest cost on large pages.
    lines = body.count(b"\n") + (not body.endswith(b"\n"))
    return lines - body.count(b"\n#") - body.startswith(b"#")


# Cheap test for "some line may end in a timestamp": a number, blanks, an integer
# at the end of a line. Most pages have none, and then the full pass is skipped.
_MAYBE_TIMESTAMP = re.compile(rb"[0-9.fFnN][ \t]+-?[0-9]+[ \t\r]*$", re.MULTILINE)


def strip_timestamps(body: bytes) -> tuple[bytes, int]:
    """Remove sample timestamps (the Pushgateway refuses them); return body and count."""
    if not _MAYBE_TIMESTAMP.search(body):
        return body, 0
    return _TIMESTAMP_LINE.subn(rb"\1", body)


_HEALTH_LINE = re.compile(
    rb"^(?:#[ \t]+(?:HELP|TYPE)[ \t]+)?(?:up|scrape_duration_seconds|scrape_samples_scraped)"
    rb"(?:[ \t{][^\n]*)?(?:\n|$)",
    re.MULTILINE,
)


def drop_health_series(body: bytes) -> tuple[bytes, int]:
    """Remove a target's own up/scrape_* families, which would clash with ours."""
    if b"scrape_" not in body and not (
        b"\nup" in body or body.startswith(b"up") or b" up " in body
    ):
        return body, 0
    return _HEALTH_LINE.subn(b"", body)


def _label_names(line: bytes) -> list[tuple[int, int]] | None:
    """Spans of the label names in a sample line, or None when it does not parse."""
    brace = line.find(b"{")
    if brace < 0 or b" " in line[:brace].strip() or b"\t" in line[:brace].strip():
        return []
    spans: list[tuple[int, int]] = []
    pos, end = brace + 1, len(line)
    while True:
        while pos < end and line[pos] in b" \t":
            pos += 1
        if pos < end and line[pos] == ord("}"):
            return spans
        start = pos
        while pos < end and (line[pos : pos + 1].isalnum() or line[pos] == ord("_")):
            pos += 1
        if pos == start:
            return None
        spans.append((start, pos))
        while pos < end and line[pos] in b" \t":
            pos += 1
        if line[pos : pos + 1] != b"=":
            return None
        pos += 1
        while pos < end and line[pos] in b" \t":
            pos += 1
        if line[pos : pos + 1] != b'"':
            return None
        pos += 1
        while pos < end and line[pos] != ord('"'):
            pos += 2 if line[pos] == ord("\\") else 1
        if pos >= end:
            return None
        pos += 1
        while pos < end and line[pos] in b" \t":
            pos += 1
        if pos < end and line[pos] == ord(","):
            pos += 1
        elif pos >= end or line[pos] != ord("}"):
            return None


def rename_labels(body: bytes, names: frozenset[bytes]) -> tuple[bytes, int]:
    """Rename labels that the grouping key will set (job, instance, ...) to `exported_<name>`.

    The Pushgateway overwrites such labels with the group's values, so two
    series differing only there would collide; Prometheus itself resolves the
    same conflict this way when honor_labels is false.
    """
    if not any(name in body for name in names):
        return body, 0
    lines = body.split(b"\n")
    renamed = 0
    for index, line in enumerate(lines):
        if not line or line.startswith(b"#") or not any(n in line for n in names):
            continue
        spans = _label_names(line)
        if not spans:
            continue
        present = {line[a:b] for a, b in spans}
        out = bytearray()
        last = 0
        for a, b in spans:
            name = line[a:b]
            if name not in names:
                continue
            new = b"exported_" + name
            while new in present:
                new = b"exported_" + new
            present.add(new)
            out += line[last:a] + new
            last = b
            renamed += 1
        out += line[last:]
        lines[index] = bytes(out)
    return b"\n".join(lines), renamed


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


class BodyLimits:
    """Line length and label count bounds, checked by regex passes rather than a parse."""

    def __init__(self, max_line_length: int, max_label_count: int) -> None:
        self.max_line_length = max_line_length
        self.max_label_count = max_label_count
        self._long_line = re.compile(rb"^[^\n]{%d}" % (max_line_length + 1), re.MULTILINE)
        # Only lines holding more `=` than labels allowed can break the label limit;
        # just those few are parsed (values may hold `=` too).
        self._many_equals = re.compile(
            rb"^[^\n=]*(?:=[^\n=]*){%d}=[^\n]*" % max_label_count, re.MULTILINE
        )

    def violation(self, body: bytes) -> tuple[str, str] | None:
        """(reason, detail) for the first limit the body breaks, or None."""
        if len(body) > self.max_line_length and self._long_line.search(body):
            return "line_too_long", f"a line is longer than {self.max_line_length} bytes"
        if body.count(b"=") > self.max_label_count:
            for match in self._many_equals.finditer(body):
                line = match.group()
                if line.lstrip().startswith(b"#"):
                    continue
                spans = _label_names(line)
                if spans and len(spans) > self.max_label_count:
                    return (
                        "too_many_labels",
                        f"a series has {len(spans)} labels, limit {self.max_label_count}",
                    )
        return None


@functools.lru_cache(maxsize=8)
def body_limits(max_line_length: int, max_label_count: int) -> BodyLimits:
    """The compiled checks for these limits (cached: a config reload may change them)."""
    return BodyLimits(max_line_length, max_label_count)
