"""Prometheus Remote-Write 1.0 on the wire: protobuf WriteRequest, snappy block format.

The four messages a request is made of are written by hand:

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

A protobuf library would build an object per label and sample only to
serialise it; here a series' labels are encoded once and kept as bytes, and
a request is the concatenation of its series.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Iterable, Sequence

import cramjam

from prometheus_streams import __version__

CONTENT_TYPE = "application/x-protobuf"
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": CONTENT_TYPE,
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": f"prometheus-streams/{__version__}",
}

_DOUBLE = struct.Struct("<d")
_pack_double = _DOUBLE.pack
_BITS = struct.Struct("<Q")
_STALE_BITS = 0x7FF0000000000002
_STALE_PACKED = _BITS.pack(_STALE_BITS)
# Prometheus' staleness marker: a NaN that no arithmetic produces. Only its
# bits tell it from another NaN, and struct keeps them on the way out.
STALE_NAN: float = _DOUBLE.unpack(_STALE_PACKED)[0]

# Field keys: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_LEN_1 = b"\x0a"  # field 1, length-delimited: timeseries, labels, label name
_LEN_2 = b"\x12"  # field 2, length-delimited: label value
_SAMPLE_HEAD = b"\x12"  # field 2, length-delimited: a sample of a series
_VALUE_KEY = b"\x09"  # field 1, fixed64: the sample's value
_STAMP_KEY = b"\x10"  # field 2, varint: the sample's timestamp
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_UINT64 = 1 << 64


def is_stale(value: float) -> bool:
    """Whether a value is Prometheus' staleness marker (by its bits: every NaN compares unequal)."""
    return math.isnan(value) and _DOUBLE.pack(value) == _STALE_PACKED


def _varint(number: int) -> bytes:
    """Protobuf's base-128 varint; a negative int64 as its two's complement (ten bytes)."""
    if 0 <= number < 0x80:
        return bytes((number,))
    if 0 < number < 0x4000:
        return bytes(((number & 0x7F) | 0x80, number >> 7))
    if number < 0:
        number += _UINT64
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


@functools.lru_cache(maxsize=64)
def _sample_frame(stamp: int) -> tuple[bytes, bytes]:
    """What comes before and after a sample's value, for one timestamp.

    A scrape's samples share their timestamp, so this is computed once a scrape.
    """
    if not -(2**63) <= stamp < 2**63:
        raise OverflowError(f"timestamp {stamp} is beyond int64")
    time = _varint(stamp)
    # 1 + 8 + 1 + at most 10 bytes: the sample's length is a one-byte varint
    return _SAMPLE_HEAD + bytes((10 + len(time),)) + _VALUE_KEY, _STAMP_KEY + time


def encode_labels(labels: Sequence[tuple[str, str]]) -> bytes:
    """The `labels` fields of one TimeSeries, sorted by name as the spec requires."""
    out = bytearray()
    for name, value in sorted(labels, key=_by_name):
        raw_name, raw_value = name.encode(), value.encode()
        size = len(raw_name) + len(raw_value)
        if size < 0x80 - 4:  # every length a one-byte varint: one formatting, no varint calls
            out += b"\x0a%c\x0a%c%b\x12%c%b" % (
                size + 4,
                len(raw_name),
                raw_name,
                len(raw_value),
                raw_value,
            )
            continue
        label = _LEN_1 + _varint(len(raw_name)) + raw_name + _LEN_2 + _varint(len(raw_value))
        out += _LEN_1 + _varint(len(label) + len(raw_value)) + label + raw_value
    return bytes(out)


def _by_name(label: tuple[str, str]) -> str:
    return label[0]


def python_encode_series(labels: bytes, samples: Sequence[tuple[float, int]], /) -> bytes:
    """encode_series in Python: the reference, and the fallback without the C pass."""
    if len(samples) == 1:  # the common case: one formatting, no list
        value, stamp = samples[0]
        head, tail = _sample_frame(stamp)
        size = len(labels) + len(head) + 8 + len(tail)
        if size < 0x80:
            return b"\x0a%c%b%b%b%b" % (size, labels, head, _pack_double(value), tail)
        if size < 0x4000:
            return b"\x0a%c%c%b%b%b%b" % (
                (size & 0x7F) | 0x80,
                size >> 7,
                labels,
                head,
                _pack_double(value),
                tail,
            )
    parts = [labels]
    for value, stamp in samples:
        head, tail = _sample_frame(stamp)
        parts += (head, _pack_double(value), tail)
    body = b"".join(parts)
    return _LEN_1 + _varint(len(body)) + body


def _native_encoder() -> Callable[[bytes, Sequence[tuple[float, int]]], bytes] | None:
    try:
        from prometheus_streams._speedups import encode_series as native
    except ImportError:
        return None
    return native


# The same bytes from C (_speedups.c) in a fraction of the time; optional at build time.
NATIVE_ENCODE = _native_encoder()
encode_series = NATIVE_ENCODE or python_encode_series
"""One `timeseries` field of a WriteRequest: encoded labels, then (value, ms) sample tuples.

encode_series(labels, samples, /): labels from encode_labels; timestamps int64.
"""


Rows = list[tuple[bytes, float, int | None]]


def python_encode_page(known: dict[bytes, bytes], rows: Rows, at: int, /) -> bytes | None:
    """encode_page in Python: the reference, and the fallback without the C pass."""
    if len(rows) != len(known) or [row[0] for row in rows] != list(known):
        return None
    return b"".join(
        python_encode_series(labels, ((value, at if stamp is None else stamp),))
        for labels, (_, value, stamp) in zip(known.values(), rows, strict=True)
    )


def _native_page_encoder() -> Callable[[dict[bytes, bytes], Rows, int], bytes | None] | None:
    try:
        from prometheus_streams._speedups import encode_page as native
    except ImportError:
        return None
    return native


NATIVE_ENCODE_PAGE = _native_page_encoder()
encode_page = NATIVE_ENCODE_PAGE or python_encode_page
"""A page with the same series as the last one, in the same order: its samples in one bytes.

encode_page(known, rows, at, /): `known` maps each series key to its encoded
labels, in page order; `rows` are (key, value, timestamp ms or None) and a
row without a timestamp gets `at`. The concatenated encode_series of every
row (one sample each), or None when the rows' keys are not known's keys in
known's order. One C call a page, not one a sample.
"""


def _native_known_page() -> Callable[[bytes, dict[bytes, bytes], int], bytes | None] | None:
    try:
        from prometheus_streams._speedups import encode_known_page as native
    except ImportError:
        return None
    return native


encode_known_page = _native_known_page()
"""encode_page(known, text.parse_page(body), at) in one C pass, without making the rows.

encode_known_page(body, known, at, /): None when the C parser leaves a line
to the Python one, or the page's keys are not known's, in order. None itself
without the C pass: then the caller parses and calls encode_page.
"""


def split_series(data: bytes) -> list[bytes]:
    """The timeseries fields of concatenated encode_series results, one bytes each."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        start = pos
        _, pos = _read_varint(data, pos)
        size, pos = _read_varint(data, pos)
        pos += size
        out.append(data[start:pos])
    return out


def write_request(series: Iterable[bytes]) -> bytes:
    """The WriteRequest body (uncompressed) made of encode_series results."""
    return b"".join(series)


def compress(data: bytes) -> bytes:
    """Snappy block format (not framed), as remote write requires."""
    return bytes(cramjam.snappy.compress_raw(data))


def decompress(data: bytes) -> bytes:
    """The reverse of compress; ValueError for data that is not snappy block format."""
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as error:
        raise ValueError(f"not snappy block format: {error}") from None


# -- decoding (tests and fake stores) ----------------------------------------------------------

Series = tuple[dict[str, str], list[tuple[float, int]]]


def decode_write_request(data: bytes) -> list[Series]:
    """A WriteRequest's series: (labels, [(value, timestamp ms)]); ValueError if malformed."""
    series: list[Series] = []
    for number, kind, payload in _fields(data):
        if number == 1 and kind == _LENGTH:
            assert isinstance(payload, bytes)
            series.append(_decode_series(payload))
    return series


def _decode_series(data: bytes) -> Series:
    labels: dict[str, str] = {}
    samples: list[tuple[float, int]] = []
    for number, kind, payload in _fields(data):
        if number == 1 and kind == _LENGTH:
            assert isinstance(payload, bytes)
            name, value = _decode_label(payload)
            if name in labels:
                raise ValueError(f"label {name!r} twice in one series")
            labels[name] = value
        elif number == 2 and kind == _LENGTH:
            assert isinstance(payload, bytes)
            samples.append(_decode_sample(payload))
    return labels, samples


def _decode_label(data: bytes) -> tuple[str, str]:
    name = value = b""
    for number, kind, payload in _fields(data):
        if kind == _LENGTH and number in (1, 2):
            assert isinstance(payload, bytes)
            if number == 1:
                name = payload
            else:
                value = payload
    try:
        return name.decode(), value.decode()
    except UnicodeDecodeError:
        raise ValueError("label name or value is not UTF-8") from None


def _decode_sample(data: bytes) -> tuple[float, int]:
    value, stamp = 0.0, 0
    for number, kind, payload in _fields(data):
        if number == 1 and kind == _FIXED64:
            assert isinstance(payload, bytes)
            value = _DOUBLE.unpack(payload)[0]
        elif number == 2 and kind == _VARINT:
            assert isinstance(payload, int)
            stamp = payload - _UINT64 if payload >= 1 << 63 else payload
    return value, stamp


def _fields(data: bytes) -> Iterable[tuple[int, int, bytes | int]]:
    """(field number, wire type, payload) of each field of one message; varints as ints."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte {pos}")
        if kind == _VARINT:
            number_value, pos = _read_varint(data, pos)
            yield number, kind, number_value
            continue
        if kind == _LENGTH:
            size, pos = _read_varint(data, pos)
        elif kind == _FIXED64:
            size = 8
        elif kind == _FIXED32:
            size = 4
        else:
            raise ValueError(f"unsupported wire type {kind} at byte {pos}")
        if pos + size > end:
            raise ValueError(f"field {number} runs past the end of its message")
        yield number, kind, data[pos : pos + size]
        pos += size


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than ten bytes")
    if result >= _UINT64:
        raise ValueError("varint beyond 64 bits")
    return result, pos
