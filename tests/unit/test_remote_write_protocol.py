"""Remote-Write 1.0 encoding by hand: exact protobuf bytes, round trips, snappy block format."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prometheus_streams import __version__
from prometheus_streams._speedups import encode_known_page as c_encode_known_page  # no C: fails
from prometheus_streams._speedups import encode_page as c_encode_page
from prometheus_streams._speedups import encode_series as c_encode_series
from prometheus_streams._speedups import parse_samples as c_parse_samples
from prometheus_streams.receiver.remote_write import protocol
from prometheus_streams.receiver.remote_write.protocol import (
    HEADERS,
    STALE_NAN,
    compress,
    decode_write_request,
    decompress,
    encode_labels,
    encode_series,
    is_stale,
    write_request,
)
from prometheus_streams.receiver.remote_write.text import parse_page, series_labels

MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_bytes_are_those_protoc_would_write() -> None:
    labels = encode_labels([("job", "n"), ("__name__", "up")])
    # Label{name="__name__", value="up"}, then Label{name="job", value="n"}
    first = b"\x0a\x08__name__\x12\x02up"
    second = b"\x0a\x03job\x12\x01n"
    assert labels == b"\x0a" + bytes([len(first)]) + first + b"\x0a" + bytes([len(second)]) + second
    series = encode_series(labels, [(1.0, 1000)])
    # Sample{value=1.0, timestamp=1000}: double field 1, varint field 2 (1000 = e8 07)
    sample = b"\x09" + struct.pack("<d", 1.0) + b"\x10\xe8\x07"
    body = labels + b"\x12" + bytes([len(sample)]) + sample
    assert series == b"\x0a" + bytes([len(body)]) + body
    assert write_request([series, series]) == series + series


def test_labels_are_sorted_by_name() -> None:
    unsorted = [("zone", "a"), ("__name__", "m"), ("instance", "h:1"), ("Job", "x"), ("job", "y")]
    [(labels, _)] = decode_write_request(encode_series(encode_labels(unsorted), [(1.0, 1)]))
    assert list(labels) == ["Job", "__name__", "instance", "job", "zone"]  # bytewise, as Go
    assert labels == dict(unsorted)


@pytest.mark.parametrize("length", [0, 1, 118, 119, 120, 121, 122, 123, 124, 125, 200, 20_000])
def test_label_lengths_across_varint_boundaries(length: int) -> None:
    labels = [("n", "v" * length), ("x" * length, "")]
    series = encode_series(encode_labels(labels), [(1.0, 1)])
    assert decode_write_request(series) == [(dict(labels), [(1.0, 1)])]


@pytest.mark.parametrize("length", [*range(95, 125), *range(16_340, 16_375)])
def test_series_lengths_across_varint_boundaries(length: int) -> None:
    labels = encode_labels([("a", "v" * length)])
    for samples in ([(1.0, 1_764_758_400_123)], [(1.0, -1)], [(1.0, 1), (2.0, 2)]):
        series = encode_series(labels, samples)
        assert decode_write_request(series) == [({"a": "v" * length}, samples)]


@pytest.mark.parametrize(
    "stamp",
    [0, 1, 127, 128, 16383, 16384, 1_764_758_400_123, 2**63 - 1, -1, -1_000, -(2**63)],
)
def test_timestamps_round_trip(stamp: int) -> None:
    [(_, samples)] = decode_write_request(
        encode_series(encode_labels([("a", "b")]), [(2.5, stamp)])
    )
    assert samples == [(2.5, stamp)]


def test_negative_timestamps_are_ten_byte_varints() -> None:
    series = encode_series(b"", [(0.0, -1)])
    assert series.endswith(b"\x10" + b"\xff" * 9 + b"\x01")


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.5, -2.25e-300, 5e-324, 1.7976931348623157e308, math.inf, -math.inf]
)
def test_values_round_trip_exactly(value: float) -> None:
    [(_, [(decoded, _)])] = decode_write_request(encode_series(b"", [(value, 7)]))
    assert struct.pack("<d", decoded) == struct.pack("<d", value)


def test_stale_nan_keeps_its_bits() -> None:
    assert struct.pack("<Q", 0x7FF0000000000002) == struct.pack("<d", STALE_NAN)
    assert is_stale(STALE_NAN)
    assert not is_stale(math.nan)
    assert not is_stale(float("nan"))
    assert not is_stale(1.0)
    assert not is_stale(math.inf)
    series = encode_series(encode_labels([("__name__", "m")]), [(STALE_NAN, 5), (math.nan, 6)])
    packed = compress(write_request([series]))
    [(_, [(stale, _), (other, _)])] = decode_write_request(decompress(packed))
    assert is_stale(stale)
    assert math.isnan(other) and not is_stale(other)


def test_several_samples_in_one_series_keep_their_order() -> None:
    samples = [(float(i), 1_700_000_000_000 + 15_000 * i) for i in range(50)]
    [(labels, decoded)] = decode_write_request(encode_series(encode_labels([("a", "1")]), samples))
    assert labels == {"a": "1"}
    assert decoded == samples


def test_a_page_round_trips_through_snappy() -> None:
    page = (
        b"# TYPE m counter\n"
        b'm{path="C:\\\\x",say="\\"hi\\"",lines="a\\nb",city="Z\xc3\xbcrich"} 3\n'
        b"up 1 1700000000000\n"
        b"big 1e308\n"
    )
    series = []
    expected = []
    for key, value, stamp in parse_page(page):
        labels = [*series_labels(key), ("job", "node"), ("instance", "h:9100")]
        time = stamp if stamp is not None else 1_800_000_000_000
        series.append(encode_series(encode_labels(labels), [(value, time)]))
        expected.append((dict(labels), [(value, time)]))
    body = write_request(series)
    assert decode_write_request(decompress(compress(body))) == expected
    assert expected[0][0]["path"] == "C:\\x"
    assert expected[0][0]["lines"] == "a\nb"
    assert expected[0][0]["city"] == "Zürich"


def test_compress_writes_the_block_format_not_the_framed_one() -> None:
    data = b"node_cpu_seconds_total" * 1000
    packed = compress(data)
    assert isinstance(packed, bytes)
    assert len(packed) < len(data) // 10
    # the block format starts with the uncompressed length as a varint; framed with a chunk id
    assert packed.startswith(protocol._varint(len(data)))
    assert not packed.startswith(b"\xff\x06\x00\x00sNaPpY")
    assert decompress(packed) == data
    assert decompress(compress(b"")) == b""


@pytest.mark.parametrize("data", [b"\xff\x06\x00\x00sNaPpY", b"\x05\x00", b"\x80", b"\x0a\x01abc"])
def test_decompress_refuses_what_is_not_snappy_block_format(data: bytes) -> None:
    with pytest.raises(ValueError, match="snappy"):
        decompress(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a",  # a field without its length
        b"\x0a\x05ab",  # a length beyond the end
        b"\x0b",  # wire type 3 (groups) is not used
        b"\x00\x01",  # field number 0
        b"\x0a\x04\x0a\x02\x0a\xff",  # a label running past its series
        b"\x0a\x06\x0a\x04\x0a\x02\xff\xfe",  # a label name that is not UTF-8
        b"\x08" + b"\xff" * 11,  # a varint longer than ten bytes
        b"\x0a\x08\x0a\x02\x0a\x00\x0a\x02\x0a\x00",  # the same label name twice
    ],
)
def test_malformed_requests_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_write_request(data)


def test_unknown_fields_are_skipped() -> None:
    series = encode_series(encode_labels([("a", "b")]), [(1.0, 2)])
    extra = b"\x18\x05" + b"\x25\x00\x00\x00\x00" + b"\x1a\x01x"  # varint, fixed32, bytes
    assert decode_write_request(extra + series + extra) == [({"a": "b"}, [(1.0, 2)])]


@MANY
@given(st.binary(max_size=200))
def test_decoding_any_bytes_gives_series_or_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_write_request(data)


text = st.text(st.characters(codec="utf-8"), max_size=20)


@MANY
@given(
    st.lists(
        st.tuples(
            st.dictionaries(text, text, max_size=5),
            st.lists(
                st.tuples(
                    st.floats(allow_nan=False), st.integers(min_value=-(2**63), max_value=2**63 - 1)
                ),
                max_size=4,
            ),
        ),
        max_size=5,
    )
)
def test_any_request_round_trips(
    request: list[tuple[dict[str, str], list[tuple[float, int]]]],
) -> None:
    body = write_request(
        encode_series(encode_labels(list(labels.items())), s) for labels, s in request
    )
    assert decode_write_request(decompress(compress(body))) == request


def test_the_receiver_encodes_with_the_c_pass() -> None:
    assert protocol.encode_series is c_encode_series


@MANY
@given(
    st.binary(max_size=300),
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True)
            | st.sampled_from([STALE_NAN, math.nan, -0.0]),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
        ),
        max_size=12,
    ),
)
def test_the_c_pass_writes_the_python_bytes(
    labels: bytes, samples: list[tuple[float, int]]
) -> None:
    assert c_encode_series(labels, samples) == protocol.python_encode_series(labels, samples)


@pytest.mark.parametrize(
    ("labels", "samples", "error"),
    [
        ("text", [(1.0, 1)], TypeError),
        (b"", [(1.0,)], TypeError),
        (b"", [[1.0, 1]], TypeError),
        (b"", [("1", 1)], TypeError),
        (b"", [(1.0, 1.5)], TypeError),
        (b"", [(1.0, 2**63)], OverflowError),
        (b"", 5, TypeError),
    ],
)
def test_the_c_pass_refuses_what_is_no_sample(
    labels: object, samples: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        c_encode_series(labels, samples)  # type: ignore[arg-type]


@pytest.mark.parametrize("stamp", [2**63, -(2**63) - 1, 2**64])
def test_timestamps_beyond_int64_raise_in_both(stamp: int) -> None:
    for encode in (c_encode_series, protocol.python_encode_series):
        with pytest.raises(OverflowError):
            encode(b"", [(1.0, stamp)])


def test_headers_are_those_of_remote_write_1_0() -> None:
    expected = {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
        "User-Agent": f"prometheus-streams/{__version__}",
    }
    assert expected == HEADERS


ROW_KEYS = st.lists(st.binary(min_size=1, max_size=20), max_size=12, unique=True)


@MANY
@given(
    ROW_KEYS,
    st.lists(st.binary(max_size=300), min_size=12, max_size=12),
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([STALE_NAN, -0.0]),
            st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
        ),
        min_size=12,
        max_size=12,
    ),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(["same", "reordered", "one_less", "other_key"]),
)
def test_a_page_in_c_is_the_python_bytes(
    keys: list[bytes],
    labels: list[bytes],
    values: list[tuple[float, int | None]],
    at: int,
    change: str,
) -> None:
    known = dict(zip(keys, labels, strict=False))
    rows = [(key, value, stamp) for key, (value, stamp) in zip(keys, values, strict=False)]
    if change == "reordered":
        rows.reverse()
    elif change == "one_less":
        rows = rows[1:]
    elif change == "other_key" and rows:
        rows[-1] = (b"\x00" + rows[-1][0], *rows[-1][1:])
    page = protocol.python_encode_page(known, rows, at)
    assert c_encode_page(known, rows, at) == page
    if page is None:
        assert change != "same"
        return
    # The same bytes as one encode_series per row, and split back into them.
    one_each = [
        encode_series(known[key], [(value, at if stamp is None else stamp)])
        for key, value, stamp in rows
    ]
    assert page == b"".join(one_each)
    assert protocol.split_series(page) == one_each


def test_the_receiver_encodes_pages_with_the_c_pass() -> None:
    assert protocol.encode_page is c_encode_page


@pytest.mark.parametrize(
    ("known", "rows", "at", "error"),
    [
        ([], [], 1, TypeError),
        ({}, (), 1, TypeError),
        ({b"a": b""}, [(b"a", 1.0)], 1, TypeError),
        ({b"a": "text"}, [(b"a", 1.0, None)], 1, TypeError),
        ({b"a": b""}, [(b"a", "1", None)], 1, TypeError),
        ({b"a": b""}, [(b"a", 1.0, 1.5)], 1, TypeError),
        ({b"a": b""}, [(b"a", 1.0, 2**63)], 1, OverflowError),
        ({b"a": b""}, [(b"a", 1.0, None)], 2**63, OverflowError),
    ],
)
def test_the_c_page_refuses_what_is_no_page(
    known: object, rows: object, at: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        c_encode_page(known, rows, at)  # type: ignore[arg-type]


PAGE_LINES = st.sampled_from(
    [
        b"a 1",
        b'a{x="1"} 2.5',
        b'a{x="1",} 2.5',
        b'a { x = "2" } -3 1700000000000',
        b"b 1e400",
        b"c NaN 123",
        b"c +Inf -5",
        b"  d -Inf",
        b"\td 1\t",
        b"e 00000000000000000000001",
        b"f 1 -9223372036854775808",
        b"f 1 9223372036854775808",
        b'g{y="\\n\\""} 0x1p3',
        b"# HELP a x",
        b"# TYPE a counter",
        b"",
        b"bad line",
        b"a 3",
        b"h 1.0000000000000000000000000000000000000001",
    ]
)


@MANY
@given(
    st.lists(PAGE_LINES, max_size=12),
    st.lists(PAGE_LINES, max_size=12) | st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)
def test_a_known_page_in_one_pass_is_parse_then_encode(
    lines: list[bytes], other: list[bytes] | None, at: int, final_newline: bool
) -> None:
    body = b"\n".join(lines) + (b"\n" if final_newline else b"")
    # Known from the page itself (the usual case) or from another page.
    known_rows = c_parse_samples(body if other is None else b"\n".join(other)) or []
    known = {key: encode_labels([("k", key.hex())]) for key, _, _ in known_rows}
    rows = c_parse_samples(body)
    expected = None if rows is None else protocol.encode_page(known, rows, at)
    assert c_encode_known_page(body, known, at) == expected


def test_the_receiver_reads_known_pages_with_the_c_pass() -> None:
    assert protocol.encode_known_page is c_encode_known_page
    body = b'# TYPE a gauge\na{x="1"} 2.5\nb 1 7\n'
    known = {b'a{x="1"}': encode_labels([("__name__", "a"), ("x", "1")]), b"b": b""}
    page = c_encode_known_page(body, known, 5)
    assert page is not None
    assert decode_write_request(page) == [
        ({"__name__": "a", "x": "1"}, [(2.5, 5)]),
        ({}, [(1.0, 7)]),
    ]
    assert c_encode_known_page(body, dict(reversed(known.items())), 5) is None
    assert c_encode_known_page(body + b"c 1\n", known, 5) is None
    assert c_encode_known_page(body.replace(b"2.5", b"two"), known, 5) is None
