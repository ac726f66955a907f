"""The C parser's exact fast path for decimals gives the very double Python's float() gives."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# Imported directly: a test run without the built extension fails here, loudly.
from prometheus_streams._speedups import parse_samples

MANY = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def c_value(number: str) -> float:
    """The value the C parser reads from a sample line with this number."""
    rows = parse_samples(b"m " + number.encode() + b"\n")
    assert rows is not None, number
    [(_, value, _)] = rows
    return value


def bits(value: float) -> bytes:
    """The double's bytes: tells -0.0 from 0.0 and one NaN from another."""
    return struct.pack("<d", value)


# Around the fast path's limits: 2^53 (the largest exact mantissa), 19 digits
# (what it accumulates), 10^22 (the largest exact power of ten), signed zeros,
# halfway cases and the numbers the fallback must take (NaN, Inf, long or far).
EDGES = [
    "0", "-0", "+0", "0.0", "-0.0", "00", ".0", "0.", "-.0", "0e0", "-0e-5", "0e-999",
    "0.000000000000000000000000000000", "1", "-1", "+1", "1.", ".5", "-.5", "0.1",
    "0.2", "0.3", "4.35", "1e22", "1e23", "1e-22", "1e-23", "9e22", "9e-22", "1E+22",
    "1e+0022", "1e-0022", "1e00000", "9007199254740992", "9007199254740993",
    "-9007199254740993", "9007199254740991e22", "9007199254740991e-22",
    "9007199254740992e-22", "9007199254740993e-22", "900719925474099.3",
    "90071992547409.93", "1234567890123456789", "12345678901234567890",
    "0.00025072118042390756", "2.7970217564395736", "6243173.236", "6113472.66",
    "1.7976931348623157e308", "5e-324", "2.5e-324",
    "1e-400", "123456789012345e-22", "123456789012345e-23", "0.000000000000000000001",
    "0.0000000000000000000001", "0.00000000000000000000001", "100000000000000000000000",
    "1000000000000000000000", "10000000000000000000000", "3.0000000000000004",
    "1.00000000000000000000000000001", "NaN", "nan", "Inf", "-Inf", "+inf", "infinity",
    "-Infinity", "4503599627370496.5", "4503599627370497.5", "8.589973e9",
    "2.2250738585072011e-308", "2.2250738585072014e-308", "7.2057594037927933e16",
    "9007199254740995", "9007199254740994.5", "9999999999999999999", "18446744073709551615",
    "9999999999999999999e22", "9999999999999999999e-22", "1000000000000000000e-22",
    "0.00000000000000000000000000000000000000000000000000000000000000000000001",
    "-0.09209218925389628", "0.9379175293987672", "90071992547409931e-1",
]  # fmt: skip


@pytest.mark.parametrize("number", EDGES)
def test_edge_numbers_read_as_float_reads_them(number: str) -> None:
    assert bits(c_value(number)) == bits(float(number))


digit_runs = st.text(alphabet="0123456789", max_size=24)


@st.composite
def decimals(draw: st.DrawFn) -> str:
    """A decimal number as an exposition page may hold it, often near the fast path's limits."""
    sign = draw(st.sampled_from(["", "-", "+"]))
    whole = draw(digit_runs)
    fraction = draw(st.none() | digit_runs)
    if not whole and not fraction:
        whole = "0"
    number = sign + whole + ("" if fraction is None else "." + fraction)
    if draw(st.booleans()):
        exponent = draw(st.integers(min_value=-40, max_value=40))
        width = draw(st.integers(min_value=0, max_value=5))
        mark = draw(st.sampled_from(["e", "E"]))
        esign = "-" if exponent < 0 else draw(st.sampled_from(["", "+"]))
        number += mark + esign + str(abs(exponent)).zfill(width)
    return number


@MANY
@given(decimals())
@example("9007199254740993")
def test_random_decimals_read_as_float_reads_them(number: str) -> None:
    assert bits(c_value(number)) == bits(float(number))


@MANY
@given(st.floats(allow_nan=False) | st.integers(min_value=-(2**64), max_value=2**64))
def test_printed_numbers_read_back_as_float_reads_them(value: float | int) -> None:
    for number in {repr(value), str(float(value)), f"{value:.15g}", f"{value:.17e}"}:
        if math.isinf(float(number)) and "inf" not in number:
            # Rounded past the largest double: Go refuses it, so the C parser leaves it.
            assert parse_samples(b"m " + number.encode() + b"\n") is None
        else:
            assert bits(c_value(number)) == bits(float(number))


@st.composite
def halfway_decimals(draw: st.DrawFn) -> str:
    """A number exactly halfway between two doubles: rounding to even decides, 16 to 20 digits."""
    k = draw(st.integers(min_value=0, max_value=22))
    bits_ = draw(st.integers(min_value=55, max_value=64))
    whole = draw(st.integers(min_value=2 ** (bits_ - 1), max_value=2**bits_ - 1))
    ulp = 2 ** (bits_ - 53)
    halfway = whole - whole % ulp + ulp // 2
    nudge = draw(st.sampled_from([0, 0, -1, 1]))
    if draw(st.booleans()):
        # h * 5^k / 10^k = h / 2^k: as much a halfway point, read by division.
        return f"{(halfway + nudge) * 5**k}e-{k}"
    return f"{halfway + nudge}e{k}" if draw(st.booleans()) else str(halfway + nudge)


@MANY
@given(halfway_decimals())
def test_halfway_numbers_round_as_float_rounds_them(number: str) -> None:
    assert bits(c_value(number)) == bits(float(number))
