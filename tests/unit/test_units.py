"""Durations and sizes as users write them in the config."""

from __future__ import annotations

import pytest

from prometheus_streams.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1y", 365 * 86400.0),
        ("1.5h", 5400.0),
        ("80", 80.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (" 30s ", 30.0),
    ],
)
def test_parse_duration_reads_prometheus_style_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("number", "seconds"), [(80, 80.0), (0, 0.0), (1.5, 1.5)])
def test_parse_duration_takes_bare_numbers_as_seconds(number: float, seconds: float) -> None:
    result = parse_duration(number)
    assert result == seconds
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "bad",
    ["5q", "", "   ", "-1s", "1h30", "s", "30S", "1 m", "m30", "30s!", "1e3s"],
)
def test_parse_duration_rejects_malformed_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [True, False, None, [30], {"s": 30}, b"30s"])
def test_parse_duration_rejects_non_duration_types(bad: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [-1, -0.5])
def test_parse_duration_rejects_negative_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_parse_duration_rejects_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MiB", 10 * 1024**2),
        ("512KB", 512_000),
        ("512kb", 512_000),
        ("1048576", 1_048_576),
        ("1.5KB", 1500),
        ("10 MB", 10_000_000),
        ("2GiB", 2 * 1024**3),
        ("1TB", 1000**4),
        ("1K", 1024),
        ("3M", 3 * 1024**2),
        ("100B", 100),
        (" 7 ", 7),
    ],
)
def test_parse_size_reads_decimal_and_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_takes_bare_int_as_bytes() -> None:
    assert parse_size(4096) == 4096
    assert parse_size(0) == 0


@pytest.mark.parametrize("bad", ["", "KB", "10Mi", "10iB", "-1", "1e3", "10 parsecs", "ten"])
def test_parse_size_rejects_malformed_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(bad)


@pytest.mark.parametrize("bad", [True, 1.5, None, ["1KB"]])
def test_parse_size_rejects_non_size_types(bad: object) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(bad)


def test_parse_size_rejects_negative_int() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_size(-1)


def test_format_duration_is_compact_seconds() -> None:
    assert format_duration(90.0) == "90s"
    assert format_duration(0.5) == "0.5s"
