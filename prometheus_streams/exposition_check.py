"""Whether a body is exposition text that the Pushgateway and Prometheus accept.

The rules are those of the text format 0.0.4 as the Pushgateway parses it
(prometheus/common's expfmt TextParser), plus what Prometheus refuses when it
scrapes the Pushgateway afterwards: the Pushgateway stores HELP text that is
not UTF-8 and the type `gauge_histogram`, and then every scrape of it fails.

Not checked here (the receiver's checks and the Pushgateway's consistency
check see them, and the receiver then pushes `up 0`): the same series twice,
a name colliding with a summary's or histogram's `_sum`/`_count`/`_bucket`,
timestamps (the receiver strips them), a body without a final newline (the
poller appends the health series after one).

`exposition_error` is the one to call: a regex pass over the whole body
proves the common page valid; only a page that pass cannot prove is walked
line by line, which finds the first error and says what it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

_BLANK = b" \t"
_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(rb"[a-zA-Z_][a-zA-Z0-9_]*")
# Go's strconv.ParseFloat without hex, underscores or `p` (expfmt refuses those).
_FLOAT = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))|(?i:nan)"
)
_INT = re.compile(rb"[+-]?[0-9]+")
# A quoted label value's inside: it ends at the closing quote, or early at a
# backslash that starts no valid escape, or at the end of the line.
_LABEL_VALUE = re.compile(rb'[^"\\]*+(?:\\["\\n][^"\\]*+)*+')
_HELP_TEXT = re.compile(rb"[^\\]*+(?:\\[\\n][^\\]*+)*+")
_TYPES = frozenset({b"counter", b"gauge", b"summary", b"histogram", b"untyped"})
_SUMMARY, _HISTOGRAM, _UNTYPED = b"summary", b"histogram", b"untyped"


def _is_float(token: bytes) -> bool:
    if not _FLOAT.fullmatch(token):
        return False
    # Go refuses a finite spelling beyond float64's range; Python rounds it to inf.
    return not math.isinf(float(token)) or token.lstrip(b"+-")[:1] in b"iI"


def _is_int64(token: bytes) -> bool:
    return bool(_INT.fullmatch(token)) and -(2**63) <= int(token) < 2**63


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass
class _Family:
    type: bytes | None = None
    help: bool = False


class _Walk:
    """The line-by-line check: the parser's states, its family bookkeeping included."""

    def __init__(self) -> None:
        self.families: dict[bytes, _Family] = {}

    def family(self, name: bytes) -> _Family:
        """The family a name belongs to, as expfmt resolves `_sum`, `_count`, `_bucket`."""
        found = self.families.get(name)
        if found is not None:
            return found
        for kind, suffixes in (
            (_SUMMARY, (b"_count", b"_sum")),
            (_HISTOGRAM, (b"_count", b"_sum", b"_bucket")),
        ):
            for suffix in suffixes:
                if len(name) > len(suffix) and name.endswith(suffix):
                    base = self.families.get(name[: -len(suffix)])
                    if base is not None and base.type == kind:
                        return base
        created = self.families[name] = _Family()
        return created

    def line(self, line: bytes) -> str | None:
        """The error in one line (without its newline), or None."""
        text = line.lstrip(_BLANK)
        if not text:
            return None
        if text[:1] == b"#":
            return self.comment(text[1:].lstrip(_BLANK))
        return self.sample(text)

    def comment(self, text: bytes) -> str | None:
        keyword, _, rest = _split_blank(text)
        if keyword not in (b"HELP", b"TYPE") or not rest:
            return None  # a plain comment, or nothing after the keyword
        match = _NAME.match(rest)
        name = match.group() if match else b""
        after = rest[len(name) :]
        if not after:
            return None
        if after[:1] not in _BLANK:
            return f"invalid metric name in {keyword.decode()} line"
        family = self.family(name)
        value = after.lstrip(_BLANK)
        if not value:
            return None
        if keyword == b"HELP":
            if family.help:
                return f"second HELP line for {name.decode()}"
            family.help = True
            if not _HELP_TEXT.fullmatch(value):
                return f"invalid escape sequence in the HELP text of {name.decode()}"
            if not _utf8(value):
                return f"HELP text of {name.decode()} is not valid UTF-8"
            return None
        if family.type is not None:
            return f"second TYPE line for {name.decode()}, or TYPE after its samples"
        if value.lower() not in _TYPES:
            return f"unknown metric type {_show(value)} for {name.decode()}"
        family.type = value.lower()
        return None

    def sample(self, text: bytes) -> str | None:
        match = _NAME.match(text)
        if match is None:
            return "invalid metric name"
        name = match.group()
        family = self.family(name)
        if family.type is None:
            family.type = _UNTYPED
        pos = _skip_blank(text, match.end())
        if text[pos : pos + 1] == b"{":
            pos, error = self._labels(text, pos + 1, name, family.type)
            if error:
                return error
            pos = _skip_blank(text, pos)
        end = _token_end(text, pos)
        value = text[pos:end]
        if not _is_float(value):
            return f"expected a number as the value of {name.decode()}, got {_show(value)}"
        if end == len(text):
            return None
        start = _skip_blank(text, end)
        end = _token_end(text, start)
        if not _is_int64(text[start:end]):
            return f"expected an integer timestamp after the value of {name.decode()}"
        if end != len(text):
            return f"unexpected {_show(text[end:])} after the timestamp of {name.decode()}"
        return None

    def _labels(self, text: bytes, pos: int, name: bytes, kind: bytes) -> tuple[int, str | None]:
        seen: set[bytes] = set()
        where = name.decode()
        while True:
            pos = _skip_blank(text, pos)
            if text[pos : pos + 1] == b"}":
                return pos + 1, None
            match = _LABEL_NAME.match(text, pos)
            if match is None:
                return pos, f"invalid label name in {where}"
            label = match.group()
            if label == b"__name__":
                return pos, f"label name __name__ is reserved ({where})"
            pos = _skip_blank(text, match.end())
            if text[pos : pos + 1] != b"=":
                return pos, f"expected '=' after label name {label.decode()} in {where}"
            special = (kind == _SUMMARY and label == b"quantile") or (
                kind == _HISTOGRAM and label == b"le"
            )
            if not special:
                if label in seen:
                    return pos, f"duplicate label name {label.decode()} in {where}"
                seen.add(label)
            pos = _skip_blank(text, pos + 1)
            if text[pos : pos + 1] != b'"':
                return pos, f"expected '\"' to open the value of label {label.decode()} in {where}"
            inside = _LABEL_VALUE.match(text, pos + 1)
            assert inside is not None  # the pattern matches the empty string
            value = inside.group()
            pos = inside.end()
            if pos >= len(text):
                return pos, f"label {label.decode()} of {where} has no closing quote"
            if text[pos] != ord('"'):
                return pos, f"invalid escape sequence in label {label.decode()} of {where}"
            if not _utf8(value):
                return pos, f"label {label.decode()} of {where} is not valid UTF-8"
            if special and not _is_float(value):
                return pos, f"label {label.decode()} of {where} is not a number: {_show(value)}"
            pos = _skip_blank(text, pos + 1)
            following = text[pos : pos + 1]
            if following == b"}":
                return pos + 1, None
            if following != b",":
                return pos, f"expected ',' or '}}' after label {label.decode()} in {where}"
            pos += 1


def _split_blank(text: bytes) -> tuple[bytes, bytes, bytes]:
    """(first token, the blanks after it, the rest)."""
    end = _token_end(text, 0)
    rest = text[end:].lstrip(_BLANK)
    return text[:end], text[end : len(text) - len(rest)], rest


def _skip_blank(text: bytes, pos: int) -> int:
    while pos < len(text) and text[pos] in _BLANK:
        pos += 1
    return pos


def _token_end(text: bytes, pos: int) -> int:
    while pos < len(text) and text[pos] not in _BLANK:
        pos += 1
    return pos


def _show(data: bytes, limit: int = 60) -> str:
    return repr(data[:limit])[1:]


def first_error(body: bytes) -> str | None:
    """The first thing the Pushgateway or Prometheus would refuse, with its line; None if valid."""
    walk = _Walk()
    for number, line in enumerate(body.split(b"\n"), 1):
        error = walk.line(line)
        if error is not None:
            return f"line {number}: {error}"
    return None


def _native() -> Callable[[bytes], int] | None:
    try:
        from prometheus_streams import _speedups
    except ImportError:
        return None
    return _speedups.check_exposition


# The same rules in C (_speedups.c) take a fraction of the walk's time; where
# it finds a bad line (or cannot decide), the walk says what is wrong.
NATIVE_CHECK = _native()


def exposition_error(body: bytes) -> str | None:
    """What makes the body unacceptable to the Pushgateway or Prometheus, or None."""
    if NATIVE_CHECK is not None and NATIVE_CHECK(body) == 0:
        return None
    return first_error(body)
