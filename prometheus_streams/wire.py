"""The message format (version 1): subjects, headers and the compressed body."""

from __future__ import annotations

import functools
import gzip
import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, cast

WIRE_VERSION = "1"
ENCODING = "gzip"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

H_VERSION = "Prometheus-Streams-Version"
H_PUBLISHER = "Prometheus-Streams-Publisher"
H_JOB = "Prometheus-Streams-Job"
H_INSTANCE = "Prometheus-Streams-Instance"
H_SCRAPE_TIME = "Prometheus-Streams-Scrape-Time-Ms"
H_LABELS = "Prometheus-Streams-Labels"
# The HA replica (of one publisher) that sent a message; subject and Msg-Id stay the publisher's.
H_REPLICA = "Prometheus-Streams-Replica"
# The fencing token of the replica's lease term: the revision of the lease
# write that began it, higher for every later term of the group.
H_TERM = "Prometheus-Streams-Replica-Term"
# Sent only for a job with honor_labels: true, so receivers that predate it rename as before.
H_HONOR_LABELS = "Prometheus-Streams-Honor-Labels"
MAX_LABELS = 32  # extra grouping labels of one target
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RESERVED_LABELS = frozenset({"job", "instance", "publisher"})


def label_name_problem(name: object) -> str | None:
    """Why `name` cannot be an extra grouping label, or None when it can."""
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        return f"not a valid label name: {name!r}"
    if name in RESERVED_LABELS or name.startswith("__"):
        return f"label {name!r} is reserved"
    return None


H_CONTENT_TYPE = "Content-Type"
H_CONTENT_ENCODING = "Content-Encoding"
H_MSG_ID = "Nats-Msg-Id"

# Our own headers take a few hundred characters; names are bounded by this too.
MAX_HEADER_CHARS = 16 * 1024

_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_EMPTY = "%"  # a lone % can never come out of escaping a non-empty value


class WireError(Exception):
    """A message that does not follow the wire format; `reason` labels the counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def escape_token(value: str) -> str:
    """Make a subject token: plain when safe, else readable %XX escapes of UTF-8 bytes."""
    if _PLAIN_TOKEN.fullmatch(value):
        return value
    if not value:
        return _EMPTY
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in value.encode("utf-8"))


def unescape_token(token: str) -> str:
    """Reverse escape_token; raise ValueError on anything escape_token cannot produce."""
    if token == _EMPTY:
        return ""
    if not token or escape_token_chars_invalid(token):
        raise ValueError(f"bad subject token {token!r}")
    raw = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(token):
        raw += token[pos : match.start()].encode("ascii")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += token[pos:].encode("ascii")
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"bad subject token {token!r}: not UTF-8") from None
    if escape_token(value) != token:
        raise ValueError(f"bad subject token {token!r}: not in canonical form")
    return value


def escape_token_chars_invalid(token: str) -> bool:
    """True when the token holds characters escape_token never emits."""
    return any(not (c.isascii() and (ord(c) in _SAFE or c == "%")) for c in token)


@dataclass(frozen=True)
class Scrape:
    """One scrape of one target, as carried on the stream."""

    publisher: str
    job: str
    instance: str
    scrape_time_ms: int
    body: bytes  # uncompressed exposition text
    labels: tuple[tuple[str, str], ...] = ()  # extra grouping labels, sorted
    honor_labels: bool = False  # the page's job, instance, ... win over the target's

    @property
    def group(self) -> tuple[str, str, str]:
        """The Pushgateway group this scrape replaces."""
        return (self.publisher, self.job, self.instance)

    def beyond(self, max_age: float) -> float | None:
        """The scrape's age in seconds when older than `max_age` (0: no limit), else None.

        Measured from the scrape time, by poller and receiver alike.
        """
        age = time.time() - self.scrape_time_ms / 1000
        return age if max_age and age > max_age else None


def subject_for(topic: str, publisher: str, job: str, instance: str) -> str:
    """The subject one target's scrapes are published on."""
    return ".".join((topic, escape_token(publisher), escape_token(job), escape_token(instance)))


def encode(
    topic: str, scrape: Scrape, level: int = 1, payload: bytes | None = None
) -> tuple[str, bytes, dict[str, str]]:
    """Return subject, compressed payload and headers; `payload` if already gzipped."""
    subject = subject_for(topic, scrape.publisher, scrape.job, scrape.instance)
    headers = {
        # Escaped tokens hold no `/`, so two different targets never share an id.
        H_MSG_ID: "/".join(subject.split(".")[-3:]) + f"/{scrape.scrape_time_ms}",
        H_VERSION: WIRE_VERSION,
        H_PUBLISHER: scrape.publisher,
        H_JOB: scrape.job,
        H_INSTANCE: scrape.instance,
        H_SCRAPE_TIME: str(scrape.scrape_time_ms),
        H_CONTENT_TYPE: CONTENT_TYPE,
        H_CONTENT_ENCODING: ENCODING,
    }
    if scrape.labels:
        headers[H_LABELS] = json.dumps(dict(scrape.labels), separators=(",", ":"))
    if scrape.honor_labels:
        headers[H_HONOR_LABELS] = "true"
    if payload is None:
        payload = gzip.compress(scrape.body, compresslevel=level, mtime=0)
    return subject, payload, headers


def header_size(headers: dict[str, str]) -> int:
    """Bytes the headers take on the wire (NATS/1.0 block), counted against max_payload."""
    lines = sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())
    return len(b"NATS/1.0\r\n") + lines + 2


class Inflater(Protocol):
    """What zlib's and ISA-L's decompress objects share."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...


def _isal_inflater() -> tuple[Callable[[int], Inflater], type[Exception]] | None:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    # The stubs type `error` as an instance; it is the module's exception class.
    return isal_zlib.decompressobj, cast(type[Exception], isal_zlib.error)


# ISA-L's inflate: a node page in about a third of zlib's CPU time
# (docs/performance.md); every page is inflated by the poller and the receiver.
_ISAL_INFLATER = _isal_inflater()


def decompress(payload: bytes, limit: int, wbits: int = 16 + zlib.MAX_WBITS) -> bytes:
    """Inflate at most `limit` bytes of one or more gzip members; refuse bombs and corrupt data.

    Several members are allowed because the poller forwards a target's own gzip
    body untouched and appends its health series as a second member.
    """
    if _ISAL_INFLATER is not None:
        inflater, error = _ISAL_INFLATER
        try:
            return _inflate(payload, limit, wbits, inflater, error)
        except (WireError, error):
            # zlib's verdict and message stand for whatever ISA-L refused (so a
            # refused body, a bomb too, is inflated twice, each time up to `limit`).
            pass
    return _inflate(payload, limit, wbits, zlib.decompressobj, zlib.error)


def _inflate(
    payload: bytes,
    limit: int,
    wbits: int,
    inflater_for: Callable[[int], Inflater],
    error: type[Exception],
) -> bytes:
    parts: list[bytes] = []
    size = 0
    data = payload
    while True:
        inflater = inflater_for(wbits)
        try:
            out = inflater.decompress(data, limit - size + 1)
        except error as exc:
            raise WireError("bad_compression", f"cannot inflate body: {exc}") from None
        size += len(out)
        if size > limit:
            raise WireError("too_large", f"body inflates beyond {limit} bytes")
        parts.append(out)
        if not inflater.eof:
            raise WireError("bad_compression", "truncated compressed body")
        data = inflater.unused_data
        if not data or wbits != 16 + zlib.MAX_WBITS:
            break
    if data:
        raise WireError("bad_compression", "trailing data after the compressed body")
    return b"".join(parts)


def decode(
    topic: str,
    subject: str,
    payload: bytes,
    headers: dict[str, str] | None,
    limit: int,
    header_limit: int = MAX_HEADER_CHARS,
) -> Scrape:
    """Check a message against the wire format and return its scrape."""
    scrape, encoding = decode_headers(topic, subject, headers, header_limit)
    return replace(scrape, body=decode_body(payload, encoding, limit))


def decode_headers(
    topic: str, subject: str, headers: dict[str, str] | None, header_limit: int = MAX_HEADER_CHARS
) -> tuple[Scrape, str]:
    """Check a message's subject and headers: its scrape without the body, and the encoding."""
    prefix = topic + "."
    if not subject.startswith(prefix):
        raise WireError("bad_subject", f"subject {subject!r} is not under {prefix}")
    rest = subject[len(prefix) :]
    # Kept for short subjects only: what a publisher sends bounds the memory.
    tokens = _subject_tokens if len(rest) <= CACHED_SUBJECT_CHARS else _subject_tokens.__wrapped__
    try:
        publisher, job, instance = tokens(rest)
    except ValueError as exc:
        raise WireError("bad_subject", f"subject {subject!r}: {exc}") from None
    headers = headers or {}
    header_bytes = sum(len(k) + len(v) for k, v in headers.items())
    if header_bytes > header_limit:
        raise WireError(
            "header_too_large", f"headers hold {header_bytes} characters, limit {header_limit}"
        )
    version = headers.get(H_VERSION)
    if version != WIRE_VERSION:
        raise WireError("bad_version", f"unsupported wire format version {version!r}")
    for name, expected in ((H_PUBLISHER, publisher), (H_JOB, job), (H_INSTANCE, instance)):
        if headers.get(name) != expected:
            raise WireError(
                "header_mismatch",
                f"header {name}={headers.get(name)!r} disagrees with subject ({expected!r})",
            )
    try:
        raw_time = headers.get(H_SCRAPE_TIME, "")
        if not raw_time.isdigit() or not raw_time.isascii() or len(raw_time) > 16:
            raise ValueError(raw_time)
        scrape_time_ms = int(raw_time)
    except ValueError:
        raise WireError(
            "bad_header", f"bad {H_SCRAPE_TIME}: {headers.get(H_SCRAPE_TIME)!r}"
        ) from None
    labels = _decode_labels(headers.get(H_LABELS))
    encoding = headers.get(H_CONTENT_ENCODING, "identity")
    if encoding not in (ENCODING, "identity"):
        raise WireError("bad_header", f"unsupported {H_CONTENT_ENCODING}: {encoding!r}")
    honor = headers.get(H_HONOR_LABELS)
    if honor not in (None, "true"):
        raise WireError("bad_header", f"bad {H_HONOR_LABELS}: {honor!r} (only 'true' is sent)")
    scrape = Scrape(publisher, job, instance, scrape_time_ms, b"", labels, honor is not None)
    return scrape, encoding


def decode_body(payload: bytes, encoding: str, limit: int) -> bytes:
    """The exposition text of a payload in an encoding decode_headers accepted."""
    if encoding == ENCODING:
        return decompress(payload, limit)
    if len(payload) > limit:
        raise WireError("too_large", f"body larger than {limit} bytes")
    return payload


CACHED_SUBJECT_CHARS = 256


@functools.lru_cache(maxsize=32768)  # targets, across every publisher
def _subject_tokens(rest: str) -> tuple[str, str, str]:
    """Publisher, job and instance of `<publisher>.<job>.<instance>`; ValueError if bad.

    Kept: every target sends on its own subject again and again, and unescaping
    goes character by character.
    """
    tokens = rest.split(".")
    if len(tokens) != 3:
        raise ValueError("needs publisher.job.instance")
    publisher, job, instance = (unescape_token(t) for t in tokens)
    return publisher, job, instance


def _decode_labels(raw: str | None) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # deep nesting exhausts the parser's stack
        raise WireError("bad_header", f"{H_LABELS} is not JSON") from None
    if not isinstance(data, dict) or len(data) > MAX_LABELS:
        raise WireError("bad_header", f"{H_LABELS} must be an object of at most {MAX_LABELS}")
    for name, value in data.items():
        problem = label_name_problem(name)
        if problem:
            raise WireError("bad_header", f"{H_LABELS}: {problem}")
        if not isinstance(value, str):
            raise WireError("bad_header", f"{H_LABELS}: label {name!r} needs a string value")
    return tuple(sorted(data.items()))
