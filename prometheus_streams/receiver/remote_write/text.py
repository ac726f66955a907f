"""Exposition text to samples: what a remote-write store needs from a page.

The rules for a sample line are those of exposition_check (the text format
0.0.4 as Prometheus and the Pushgateway parse it); comments, HELP and TYPE
lines are skipped, since a remote-write request carries samples only. The
poller checked the page already, but a receiver never trusts a publisher: a
bad line raises ParseError, which names the line and a short reason for the
output's counter, and never anything else.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable

Sample = tuple[bytes, float, int | None]  # series key, value, timestamp (ms) or None

# The grammar, as regex pieces. Possessive quantifiers: a page is one regex
# pass, and a bad line must not send it backtracking.
_NAME = rb"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_LABEL_NAME = rb"[a-zA-Z_][a-zA-Z0-9_]*+"
_VALUE_INSIDE = rb'[^"\\\n]*+(?:\\["\\n][^"\\\n]*+)*+'
_PAIR = _LABEL_NAME + rb'[ \t]*+=[ \t]*+"' + _VALUE_INSIDE + rb'"'
_BLOCK = rb"\{[ \t]*+(?:" + _PAIR + rb"[ \t]*+(?:,[ \t]*+" + _PAIR + rb"[ \t]*+)*+(?:,[ \t]*+)?)?\}"
_KEY = _NAME + rb"(?:[ \t]*+" + _BLOCK + rb")?"
# Go's strconv.ParseFloat as Prometheus calls it: no hex, no underscores.
# Python's float() reads every one of these spellings the same way.
_FLOAT = (
    rb"[+-]?(?:(?:[0-9]++\.?[0-9]*+|\.[0-9]++)(?:[eE][+-]?[0-9]++)?|(?i:infinity|inf))|(?i:nan)"
)
_TIMESTAMP = rb"[+-]?[0-9]++"
# Blanks before the value are optional, as in both of Prometheus' parsers: `m-1`
# is m's -1 (a name takes every character that could start a value but a sign
# or a point, so nothing is ambiguous).
_SAMPLE = (
    rb"(" + _KEY + rb")[ \t]*+(" + _FLOAT + rb")(?:[ \t]++(" + _TIMESTAMP + rb"))?[ \t]*+(?=\n|\Z)"
)
# Every line that is neither blank nor a comment matches once: as a sample,
# or (the second branch) as an empty match that marks it bad.
_LINE = re.compile(rb"\n[ \t]*+(?:" + _SAMPLE + rb"|(?=[^#\n]))")

_NAME_AT = re.compile(_NAME)
_BLOCK_AT = re.compile(_BLOCK)
_FLOAT_ONLY = re.compile(_FLOAT)
_TIMESTAMP_ONLY = re.compile(_TIMESTAMP)
_KEY_PARTS = re.compile(rb"(" + _NAME + rb")(?:[ \t]*+(" + _BLOCK + rb"))?")
_PAIRS = re.compile(rb"(" + _LABEL_NAME + rb')[ \t]*+=[ \t]*+"(' + _VALUE_INSIDE + rb')"')
_BLANKS = re.compile(rb"[ \t]+")
_ESCAPE = re.compile(rb"\\(.)")
_UNESCAPED = {b"\\": b"\\", b'"': b'"', b"n": b"\n"}

_INF = math.inf
_MIN_STAMP, _MAX_STAMP = -(2**63), 2**63 - 1
_STAMP_DIGITS = 18  # a timestamp this long or shorter is within int64


class ParseError(ValueError):
    """A page or series key that does not parse: its line (1-based; 0 for a key alone) and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


def parse_page(body: bytes) -> list[Sample]:
    """Every sample line of a page: (series key, value, timestamp in ms or None)."""
    return _parse(body)


def python_parse_page(body: bytes) -> list[Sample]:
    """parse_page in Python: the reference, and the fallback without the C pass."""
    found: list[tuple[bytes, bytes, bytes]] = _LINE.findall(b"\n" + body)
    if not found:
        return []
    keys, values, stamps = zip(*found, strict=True)
    if b"" in keys:
        raise _first_error(body)
    floats = list(map(float, values))
    # Go refuses a finite spelling beyond float64's range, where Python rounds to inf.
    if (_INF in floats or -_INF in floats) and any(
        math.isinf(value) and _overflows(token) for value, token in zip(floats, values, strict=True)
    ):
        raise _first_error(body)
    if not any(stamps):
        return list(zip(keys, floats, itertools.repeat(None)))
    times = [int(stamp) if stamp else None for stamp in stamps]
    if any(len(stamp) > _STAMP_DIGITS for stamp in stamps) and not all(
        _MIN_STAMP <= time <= _MAX_STAMP for time in times if time is not None
    ):
        raise _first_error(body)
    return list(zip(keys, floats, times, strict=True))


def _overflows(token: bytes) -> bool:
    return token.lstrip(b"+-")[:1] not in (b"i", b"I")


def _first_error(body: bytes) -> ParseError:
    """The first bad line and what is wrong with it (the slow path, for a page known bad)."""
    for number, line in enumerate(body.split(b"\n"), 1):
        reason = line_error(line)
        if reason is not None:
            return ParseError(number, reason)
    return ParseError(0, "bad_line")  # unreachable while line_error and _LINE agree


def line_error(line: bytes) -> str | None:
    """Why one line (without its newline) is no sample line, or None if it is one or is skipped."""
    text = line.lstrip(b" \t")
    if not text or text[:1] == b"#":
        return None
    found = _LINE.match(b"\n" + text)
    if found is not None and found.group(1):
        value, stamp = found.group(2), found.group(3)
        if math.isinf(float(value)) and _overflows(value):
            return "bad_value"
        if stamp and not _MIN_STAMP <= int(stamp) <= _MAX_STAMP:
            return "bad_timestamp"
        return None
    name = _NAME_AT.match(text)
    if name is None:
        return "bad_line"
    after = text[name.end() :]
    rest = after.lstrip(b" \t")
    if rest[:1] == b"{":
        block = _BLOCK_AT.match(rest)
        if block is None:
            return "bad_label"
        rest = rest[block.end() :]
    tokens = _BLANKS.split(rest.strip(b" \t"))
    if not _FLOAT_ONLY.fullmatch(tokens[0]):
        return "bad_value"
    if len(tokens) > 1 and not _TIMESTAMP_ONLY.fullmatch(tokens[1]):
        return "bad_timestamp"
    return "bad_line"  # something after the timestamp


def series_labels(key: bytes) -> list[tuple[str, str]]:
    """A series key's labels, ("__name__", name) first; empty values dropped, as Prometheus does."""
    parts = _KEY_PARTS.fullmatch(key)
    if parts is None:
        raise ParseError(0, "bad_label")
    labels = [("__name__", parts.group(1).decode())]
    block = parts.group(2)
    if block is None:
        return labels
    seen = {"__name__"}
    for raw_name, raw_value in _PAIRS.findall(block):
        name = raw_name.decode()
        if name in seen:
            raise ParseError(0, "bad_label")
        seen.add(name)
        if not raw_value:
            continue
        if b"\\" in raw_value:
            raw_value = _ESCAPE.sub(_unescape, raw_value)
        try:
            labels.append((name, raw_value.decode()))
        except UnicodeDecodeError:
            raise ParseError(0, "bad_label") from None
    return labels


def _unescape(escape: re.Match[bytes]) -> bytes:
    return _UNESCAPED[escape.group(1)]


def _native() -> Callable[[bytes], list[Sample]] | None:
    try:
        from prometheus_streams._speedups import parse_samples
    except ImportError:
        return None

    def native_parse_page(body: bytes) -> list[Sample]:
        """parse_page with the C pass; a page it leaves (a bad line) goes to the Python one."""
        found = parse_samples(body)
        return found if found is not None else python_parse_page(body)

    return native_parse_page


# The C pass (_speedups.c) is optional at build time, as exposition's; the
# Python parser is the reference, and says what is wrong with a bad page.
NATIVE_PARSE = _native()
_parse = NATIVE_PARSE or python_parse_page
