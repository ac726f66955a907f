"""Exposition text to samples for remote write: what parses, what does not, and why."""

from __future__ import annotations

import importlib.util
import math
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prometheus_streams import exposition
from prometheus_streams._speedups import parse_samples  # without the C build: fails loudly
from prometheus_streams.exposition_check import first_error
from prometheus_streams.receiver.remote_write import text
from prometheus_streams.receiver.remote_write.text import (
    ParseError,
    Sample,
    parse_page,
    series_labels,
)


def _bench_pages() -> object:
    """benchmarks/pages.py (node-sized pages), which is not on the tests' import path."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pages.py"
    spec = importlib.util.spec_from_file_location("bench_pages", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_pages = _bench_pages()
node_page: Callable[..., bytes] = _pages.node_page  # type: ignore[attr-defined]
big_page: Callable[..., bytes] = _pages.big_page  # type: ignore[attr-defined]

MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The Python parser (the reference) and the C pass with its fallback, as the receiver runs it.
assert text.NATIVE_PARSE is not None
PARSERS: list[Callable[[bytes], list[Sample]]] = [text.python_parse_page, text.NATIVE_PARSE]
parsers = pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)


def _bits(samples: list[Sample]) -> list[tuple[bytes, bytes, int | None]]:
    """Samples compared by their values' bits (a NaN equals no NaN)."""
    return [(key, struct.pack("<d", value), stamp) for key, value, stamp in samples]


def test_the_receiver_parses_with_the_c_pass() -> None:
    assert text._parse is text.NATIVE_PARSE


def test_a_page_gives_one_sample_per_line_with_its_key_as_written() -> None:
    page = (
        b"# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
        b"# TYPE node_cpu_seconds_total counter\n"
        b'node_cpu_seconds_total{cpu="0",mode="idle"} 1234.5\n'
        b"\n"
        b"  # an indented comment\n"
        b'node_cpu_seconds_total {cpu="0", mode="user",} 17 1700000000000\n'
        b"up 1\n"
        b"\t up\t0  -5 \t\n"
        b'm{a="x y"}3\n'
        b"m-1\n"  # no blank needed where the name cannot go on: Prometheus reads m, -1
        b"m.5\n"
    )
    assert parse_page(page) == [
        (b'node_cpu_seconds_total{cpu="0",mode="idle"}', 1234.5, None),
        (b'node_cpu_seconds_total {cpu="0", mode="user",}', 17.0, 1700000000000),
        (b"up", 1.0, None),
        (b"up", 0.0, -5),
        (b'm{a="x y"}', 3.0, None),
        (b"m", -1.0, None),
        (b"m", 0.5, None),
    ]


@parsers
def test_empty_and_comment_only_pages_give_no_samples(
    parse: Callable[[bytes], list[Sample]],
) -> None:
    assert parse(b"") == []
    assert parse(b"\n\n  \t\n") == []
    assert parse(b"# HELP m x\n# TYPE m gauge\n#\n") == []


@parsers
@pytest.mark.parametrize(
    ("token", "value"),
    [
        (b"0", 0.0),
        (b"-0", -0.0),
        (b"+1", 1.0),
        (b"1.", 1.0),
        (b".5", 0.5),
        (b"1e3", 1000.0),
        (b"1E-3", 0.001),
        (b"-1.5e+07", -1.5e7),
        (b"007", 7.0),
        (b"1e-400", 0.0),  # underflow is no error in Go
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        (b"Inf", math.inf),
        (b"+Inf", math.inf),
        (b"-Inf", -math.inf),
        (b"inf", math.inf),
        (b"-INF", -math.inf),
        (b"infinity", math.inf),  # Go's ParseFloat takes it, so Prometheus does
        (b"-Infinity", -math.inf),
        (b"9007199254740993", 9007199254740992.0),
    ],
)
def test_values_read_as_go_reads_them(
    parse: Callable[[bytes], list[Sample]], token: bytes, value: float
) -> None:
    [(_, parsed, _)] = parse(b"m " + token + b"\n")
    assert parsed == value
    assert math.copysign(1, parsed) == math.copysign(1, value)


@parsers
@pytest.mark.parametrize("token", [b"NaN", b"nan", b"NAN"])
def test_nan_spellings(parse: Callable[[bytes], list[Sample]], token: bytes) -> None:
    [(_, parsed, _)] = parse(b"m " + token)
    assert math.isnan(parsed)


@parsers
@pytest.mark.parametrize(
    "token",
    [
        b"1_000",  # Python takes underscores, Go only after a base prefix
        b"+NaN",  # Python takes a sign on NaN, Go does not
        b"-nan",
        b"0x10",
        b"0x1p4",
        b"1e400",  # beyond float64: Go says out of range, Python says inf
        b"-1e309",
        b"1" * 400,
        b"infinit",
        b"infinityy",
        b"in",
        b"1e",
        b"e5",
        b".",
        b"1..2",
        b"--1",
        b"1.5x",
        b"\xd9\xa1",  # a non-ASCII digit
        b"1\r",
        b"\xef\xbc\x91",
        b"true",
    ],
)
def test_values_go_refuses_are_bad_values(
    parse: Callable[[bytes], list[Sample]], token: bytes
) -> None:
    with pytest.raises(ParseError) as caught:
        parse(b"ok 1\nm " + token + b"\n")
    assert (caught.value.line, caught.value.reason) == (2, "bad_value")


@parsers
@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (b"0", 0),
        (b"-1", -1),
        (b"+5", 5),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"000000000000000000001", 1),  # long, but within int64
    ],
)
def test_timestamps_are_int64_milliseconds(
    parse: Callable[[bytes], list[Sample]], stamp: bytes, expected: int
) -> None:
    assert parse(b"m 1 " + stamp + b"\nn 2\n") == [(b"m", 1.0, expected), (b"n", 2.0, None)]


@parsers
@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"9m 1", "bad_line"),  # a name starts with a letter, _ or :
        (b"m1", "bad_value"),  # the name takes the digit
        (b"m 1 2 3", "bad_line"),
        (b'm{a="b"} 1 2 x', "bad_line"),
        (b"{} 1", "bad_line"),
        (b"\r", "bad_line"),
        (b"\x00m 1", "bad_line"),
        (b"m", "bad_value"),
        (b"m ", "bad_value"),
        (b'm{a="b"}', "bad_value"),
        (b"m x", "bad_value"),
        (b"m 1\r", "bad_value"),
        (b"m 1 x", "bad_timestamp"),
        (b"m 1 2\r", "bad_timestamp"),
        (b"m 1 1.5", "bad_timestamp"),
        (b"m 1 1e3", "bad_timestamp"),
        (b"m 1 9223372036854775808", "bad_timestamp"),
        (b"m 1 -9223372036854775809", "bad_timestamp"),
        (b"m{a=b} 1", "bad_label"),
        (b'm{a="b" 1', "bad_label"),
        (b'm{a="b",,} 1', "bad_label"),
        (b"m{,} 1", "bad_label"),
        (b'm{a="b" c="d"} 1', "bad_label"),
        (b'm{1a="b"} 1', "bad_label"),
        (b'm{a:b="c"} 1', "bad_label"),
        (b'm{a="\\x"} 1', "bad_label"),  # only \\, \" and \n are escapes
        (b'm{a="b\\"} 1', "bad_label"),
        (b'm{a="b} 1', "bad_label"),
        (b"m{a} 1", "bad_label"),
    ],
)
def test_every_bad_line_names_its_line_and_reason(
    parse: Callable[[bytes], list[Sample]], line: bytes, reason: str
) -> None:
    page = b"# TYPE ok gauge\nok 1\n\n" + line + b"\nlater 2\nlater 3 x\n"
    with pytest.raises(ParseError) as caught:
        parse(page)
    assert (caught.value.line, caught.value.reason) == (4, reason)
    assert text.line_error(line) == reason
    assert str(caught.value) == f"line 4: {reason}"


@parsers
def test_the_last_line_without_newline_is_checked_too(
    parse: Callable[[bytes], list[Sample]],
) -> None:
    with pytest.raises(ParseError) as caught:
        parse(b"a 1\nb 2\nc")
    assert (caught.value.line, caught.value.reason) == (3, "bad_value")


@parsers
@pytest.mark.parametrize("page", [node_page(), node_page(cpus=32), big_page(2000)])
def test_node_sized_pages_give_as_many_samples_as_count_samples(
    parse: Callable[[bytes], list[Sample]], page: bytes
) -> None:
    samples = parse(page)
    assert len(samples) == exposition.count_samples(page)
    assert [(key, value) for key, value, _ in samples] == [
        (key, float(value)) for key, value, _ in exposition.index_samples(page)
    ]
    for key, _, _ in samples:
        series_labels(key)  # every key of a real page has valid labels


# -- series_labels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "labels"),
    [
        (b"up", [("__name__", "up")]),
        (b"up{}", [("__name__", "up")]),
        (b"a:b_c{}", [("__name__", "a:b_c")]),
        (
            b'node_cpu_seconds_total{cpu="0",mode="idle"}',
            [("__name__", "node_cpu_seconds_total"), ("cpu", "0"), ("mode", "idle")],
        ),
        (b'm {b="1",a="2",}', [("__name__", "m"), ("b", "1"), ("a", "2")]),
        (b'm{ a = "1" , b="2" , }', [("__name__", "m"), ("a", "1"), ("b", "2")]),
        (
            b'm{path="C:\\\\dir\\\\",say="\\"hi\\"",lines="a\\nb",raw="\\\\n"}',
            [
                ("__name__", "m"),
                ("path", "C:\\dir\\"),
                ("say", '"hi"'),
                ("lines", "a\nb"),
                ("raw", "\\n"),
            ],
        ),
        (b'm{a="{},=\\"",b="x y"}', [("__name__", "m"), ("a", '{},="'), ("b", "x y")]),
        (
            'm{city="Zürich",emoji="✓"}'.encode(),
            [("__name__", "m"), ("city", "Zürich"), ("emoji", "✓")],
        ),
        # an empty value is no label, as in Prometheus
        (b'm{a="",b="1"}', [("__name__", "m"), ("b", "1")]),
    ],
)
def test_series_labels(key: bytes, labels: list[tuple[str, str]]) -> None:
    assert series_labels(key) == labels


@pytest.mark.parametrize(
    "key",
    [
        b"",
        b" up",
        b"up ",
        b"9up",
        b"up{",
        b"up}",
        b'up{a="1"',
        b'up{a="1"}}',
        b'up{a="1",a="2"}',  # duplicate label names
        b'up{a="",a="2"}',
        b'up{__name__="x"}',  # the name is a label already
        b'up{a="\\xff"}',
        b'up{a="\xff"}',  # not UTF-8
        b'up{a="\xc3"}',
        b'up{a="\\q"}',
        b'up{a-b="1"}',
        b'up{a="1" b="2"}',
        b'up{a="1"} 1',
    ],
)
def test_malformed_keys_are_bad_labels(key: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        series_labels(key)
    assert (caught.value.line, caught.value.reason) == (0, "bad_label")


# -- properties: never a crash, and never stricter than the poller's check ---------------------

names = st.sampled_from([b"m", b"a_b:c", b"_x", b"up", b"9bad", b"", b"m-1"])
label_values = st.sampled_from([b"", b"v", b"x y", b'\\"', b"\\\\", b"\\n", b"\\x", b"\xff", b"}"])
pairs = st.tuples(st.sampled_from([b"a", b"b", b"le", b"1a", b""]), label_values).map(
    lambda p: p[0] + b'="' + p[1] + b'"'
)
blocks = st.one_of(
    st.just(b""),
    st.lists(pairs, max_size=3).map(lambda ps: b"{" + b",".join(ps) + b"}"),
    st.lists(pairs, max_size=3).map(lambda ps: b"{" + b",".join(ps) + b",}"),
    st.sampled_from([b"{", b"{a}", b'{a="b"', b"{,}"]),
)
values = st.sampled_from(
    [
        b"1",
        b"-2.5e3",
        b".5",
        b"5.",
        b"NaN",
        b"+Inf",
        b"-inf",
        b"Infinity",
        b"1e400",
        b"1_0",
        b"+nan",
        b"0x1p3",
        b"x",
        b"",
    ]
)
stamps = st.sampled_from([b"", b" 0", b" -17", b" +3", b" 9223372036854775808", b" 1.5", b" x"])
blanks = st.sampled_from([b" ", b"\t", b"  ", b"", b" \t"])
sample_lines = st.builds(
    lambda lead, name, gap, block, sep, value, stamp, tail: (
        lead + name + gap + block + sep + value + stamp + tail
    ),
    blanks,
    names,
    st.sampled_from([b"", b" "]),
    blocks,
    blanks,
    values,
    stamps,
    st.sampled_from([b"", b" ", b"\t", b"\r", b" x"]),
)
other_lines = st.sampled_from([b"", b"  ", b"# HELP m text", b"# TYPE m gauge", b"#", b"\r"])
pages = st.lists(st.one_of(sample_lines, other_lines), max_size=8).map(b"\n".join)


GO_FLOATS = b"".join(
    b"m%d %s\n" % (number, token)
    for number, token in enumerate(
        [
            b"0",
            b"-0",
            b"+1",
            b"1.",
            b".5",
            b"1e3",
            b"1E-3",
            b"-1.5e+07",
            b"1e-400",
            b"NaN",
            b"nan",
            b"Inf",
            b"-inf",
            b"+Infinity",
            b"1.7976931348623157e308",
            b"9007199254740993",
            b"0.30000000000000004",
            b"4.9e-324",
            b"123456789012345678901234567890",
        ]
    )
)


@pytest.mark.parametrize(
    "page",
    [
        node_page(),
        node_page(cpus=32),
        big_page(2000),
        GO_FLOATS,
        b'a{x="1"}2\nb {y="\\"\\\\\\n",} 3 -4\n\t c  5 \t +6\t\n# c\n\n d{} NaN',
        b"",
    ],
)
def test_the_c_pass_gives_the_python_results(page: bytes) -> None:
    native = parse_samples(page)
    assert native is not None
    assert _bits(native) == _bits(text.python_parse_page(page))


@MANY
@given(st.one_of(pages, st.binary(max_size=200)))
@example(b'm{a="b"}1')
@example(b"m 1\n\n")
@example(GO_FLOATS)
@example(b"m 0 0030316226181717355\nm 1 -09223372036854775808\nm 2 " + b"0" * 70 + b"1")
@example(b"m " + b"0" * 70 + b"1.5e3\nm -" + b"1" * 80 + b"\nm " + b"9" * 400)
def test_any_bytes_parse_or_raise_parse_error_and_the_poller_check_agrees(page: bytes) -> None:
    native = parse_samples(page)
    try:
        expected = text.python_parse_page(page)
    except ParseError as error:
        assert error.line >= 1
        assert native is None  # the C pass leaves every bad page to Python
        # What the poller's check accepts, this accepts too (it checks more: types, HELP).
        assert first_error(page) is not None, (error.line, error.reason)
        return
    assert native is not None
    assert _bits(native) == _bits(expected)


@MANY
@given(st.binary(max_size=80), st.lists(pairs, max_size=4))
def test_series_labels_never_crash(raw: bytes, some: list[bytes]) -> None:
    for key in (raw, b"m{" + b",".join(some) + b"}"):
        try:
            labels = series_labels(key)
        except ParseError as error:
            assert error.reason == "bad_label"
        else:
            assert labels[0][0] == "__name__"
            assert len({name for name, _ in labels}) == len(labels)
