"""What we do to exposition text: count samples, add health series, strip timestamps."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping

HEALTH_FAMILIES = (b"up", b"scrape_duration_seconds", b"scrape_samples_scraped")

# A sample line is `name[{labels}] value [timestamp]`. A label value may hold
# spaces, but the labels run to the line's last `}` and neither value nor
# timestamp can contain one, so the inside of a label is never taken for them.
# A line with more fields than that is no sample and is left alone, which keeps
# stripping idempotent.
_VALUE = rb"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.|Inf|inf|NaN|nan)"
_TIMESTAMP_LINE = re.compile(
    rb"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:[ \t]*\{[^\n]*\})?[ \t]+"
    + _VALUE
    + rb")[ \t]+-?[0-9]+[ \t\r]*$",
    re.MULTILINE,
)

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


# One regex pass anchored on a newline, never a per-line Python loop or a
# `^`-anchored multiline pattern: on a node page those cost several times as
# much (docs/performance.md, "hot path"). Hence the shapes below.
_SAMPLE_START = re.compile(rb"\n[ \t]*[^#\s]")
# name, optional labels (greedy to the last `}`), value, optional timestamp
_SAMPLE = re.compile(
    rb"\n([a-zA-Z_:][a-zA-Z0-9_:]*(?:[ \t]*\{[^\n]*\})?)[ \t]+(\S+)(?:[ \t]+(-?[0-9]+))?"
    rb"[ \t\r]*(?=\n|\Z)"
)
Sample = tuple[bytes, bytes, bytes]  # series (name and labels), value, timestamp or b""


def _count_samples(body: bytes) -> int:
    """Count sample lines (not comments, not blank) without parsing them."""
    return len(_SAMPLE_START.findall(b"\n" + body)) if body else 0


def _native_count() -> Callable[[bytes], int] | None:
    try:
        from prometheus_streams import _speedups
    except ImportError:
        return None
    return _speedups.count_samples


# The same count in C takes a fifth of the regex's time on a node page; the
# poller does it for every scrape (docs/performance.md, "Against vmagent").
count_samples = _native_count() or _count_samples


def index_samples(body: bytes) -> list[Sample]:
    """Every well-formed sample line, split; fewer than count_samples means a bad line."""
    return _SAMPLE.findall(b"\n" + body)


# A plain number ending a line: a sample's value, which changes from scrape to
# scrape. Everything else in a body is its shape. Timestamps, tabs and other
# spellings are left in, so such bodies never match a checked shape.
SHAPE_VALUE_MAX = 40  # the longest value body_shape takes out
_FINAL_VALUE = rb" [-+.0-9eEaInNf]{1,%d}" % SHAPE_VALUE_MAX
# Possessive and taking the newline along (given back in the replacement):
# the same matches as a look-ahead, and cheaper (docs/performance.md).
_FINAL_NUMBER = re.compile(_FINAL_VALUE + rb"+\n")


def _strip_final_values(body: bytes) -> tuple[bytes, int]:
    """The body without each line's final value, and how many were taken out."""
    return _FINAL_NUMBER.subn(b"\n", body)


def _native() -> Callable[[bytes], tuple[bytes, int]] | None:
    try:
        from prometheus_streams import _speedups
    except ImportError:
        return None
    return _speedups.strip_final_values


# The same pass in C (_speedups.c) takes a tenth of the regex's time. It is
# optional at build time; the receiver warns when it runs without.
NATIVE_SHAPE = _native()
strip_final_values = NATIVE_SHAPE or _strip_final_values

Shape = tuple[bytes, int]  # digest of the body without its values, values taken out


def body_shape(body: bytes) -> Shape:
    """A digest of a body without its sample values, and how many values were taken out.

    Two bodies with equal shapes hold the same lines (names, labels, comments,
    TYPE lines) in the same order and differ at most in the number ending each
    line, so what a check found for one holds for the other. SHA-256 so that no
    publisher can make a body collide with a shape already checked.
    """
    skeleton, values = strip_final_values(body)
    return hashlib.sha256(skeleton).digest(), values


_COMMENT_FINAL_NUMBER = re.compile(rb"\n[ \t]*#[^\n]*" + _FINAL_VALUE + rb"(?=\n)")


def longest_line(body: bytes) -> int:
    """The length of the body's longest line, without its newline."""
    return max(map(len, body.split(b"\n")))


def shape_covers_samples(body: bytes, shape: Shape, samples: int) -> bool:
    """Whether body_shape took the value out of every one of the body's sample lines.

    Only then does an equal shape mean "the same body but for its values". A
    comment ending in a number loses it too, so those are counted apart.
    """
    return shape[1] == samples + len(_COMMENT_FINAL_NUMBER.findall(b"\n" + body))


def first_bad_line(body: bytes) -> bytes | None:
    """The first sample line index_samples cannot split (slow; for error messages)."""
    for line in body.split(b"\n"):
        probe = b"\n" + line
        if _SAMPLE_START.match(probe) and not _SAMPLE.fullmatch(probe):
            return line.strip()
    return None


def strip_timestamps(body: bytes, samples: list[Sample] | None = None) -> tuple[bytes, int]:
    """Remove sample timestamps (the Pushgateway refuses them); return body and count.

    With the page's `samples` at hand, a page without timestamps (the common
    case) costs nothing more.
    """
    if samples is not None and not any(stamp for _, _, stamp in samples):
        return body, 0
    return _TIMESTAMP_LINE.subn(rb"\1", body)


_HEALTH_LINE = re.compile(
    rb"^(?:#[ \t]+(?:HELP|TYPE)[ \t]+)?(?:up|scrape_duration_seconds|scrape_samples_scraped)"
    rb"(?:[ \t{][^\n]*)?(?:\n|$)",
    re.MULTILINE,
)
_HEALTH_ANYWHERE = re.compile(
    rb"\n(?:#[ \t]+(?:HELP|TYPE)[ \t]+)?(?:up|scrape_(?:duration_seconds|samples_scraped))[ \t{]"
)


def _native_health() -> Callable[[bytes], bool] | None:
    try:
        from prometheus_streams import _speedups
    except ImportError:
        return None
    return _speedups.has_health_line


# A C pass that rules out most pages at a tenth of the regexes' cost (the
# poller asks for every scrape); what it lets through the regexes decide.
NATIVE_HEALTH = _native_health()


def drop_health_series(body: bytes) -> tuple[bytes, int]:
    """Remove a target's own up/scrape_* families, which would clash with ours."""
    if NATIVE_HEALTH is not None and not NATIVE_HEALTH(body):
        return body, 0
    return _drop_health_series(body)


def _drop_health_series(body: bytes) -> tuple[bytes, int]:
    if not _HEALTH_ANYWHERE.search(b"\n" + body[:200]) and not _HEALTH_ANYWHERE.search(body):
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


def escape_value(value: str) -> str:
    """A label value escaped for the text format."""
    return value.translate(_ESCAPES)


def _raw_value(line: bytes, name_end: int) -> bytes:
    """The escaped value of the label whose name ends at `name_end` (a line that parsed)."""
    start = line.index(b'"', name_end) + 1
    pos = start
    while line[pos] != ord('"'):
        pos += 2 if line[pos] == ord("\\") else 1
    return line[start:pos]


def holds_label(body: bytes, names: Iterable[bytes]) -> bool:
    """Whether a label of one of `names` may be in `body` (a quick test, never a miss)."""
    # Substring tests run at memchr speed; a regex for "label position" does not.
    return any(name + sep in body for name in names for sep in (b"=", b" =", b"\t="))


def rename_labels(
    body: bytes, names: frozenset[bytes], keep: Mapping[bytes, bytes] | None = None
) -> tuple[bytes, int]:
    """Rename labels that the grouping key will set (job, instance, ...) to `exported_<name>`.

    The Pushgateway overwrites such labels with the group's values, so two
    series differing only there would collide; Prometheus itself resolves the
    same conflict this way when honor_labels is false. `keep` (honor_labels:
    true) maps a name to the group's escaped value: a label with that very
    value stays, as Prometheus would show it; one with another value cannot
    be shown in this group and is renamed all the same.
    """
    if not holds_label(body, names):
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
            if keep is not None and name in keep and _raw_value(line, b) == keep[name]:
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
        # Only lines holding more `=` than labels allowed can break the label limit;
        # just those few are parsed (values may hold `=` too).
        self._many_equals = re.compile(
            rb"^[^\n=]*(?:=[^\n=]*){%d}=[^\n]*" % max_label_count, re.MULTILINE
        )

    def line_too_long(self, body: bytes) -> bool:
        """Whether a line is longer than the limit.

        Jumps from line start to the last newline within limit + 1 bytes, so a
        body costs about len/limit searches instead of a regex step per byte.
        """
        limit, start, end = self.max_line_length, 0, len(body)
        while end - start > limit:
            newline = body.rfind(b"\n", start, start + limit + 1)
            if newline < 0:
                return True
            start = newline + 1
        return False

    def violation(self, body: bytes, samples: list[Sample] | None = None) -> tuple[str, str] | None:
        """(reason, detail) for the first limit the body breaks, or None."""
        if self.line_too_long(body):
            return "line_too_long", f"a line is longer than {self.max_line_length} bytes"
        if body.count(b"=") > self.max_label_count:
            if samples is not None:
                # Only series with more `=` than labels allowed can break the limit.
                shortest = 5 * self.max_label_count  # `a="",` per label at least
                lines = [
                    s
                    for s, _, _ in samples
                    if len(s) > shortest and s.count(b"=") > self.max_label_count
                ]
            else:
                lines = [m.group() for m in self._many_equals.finditer(body)]
            for line in lines:
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
