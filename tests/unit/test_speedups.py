"""The C pass over a body (_speedups.c) does exactly what the regex it replaces does."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prometheus_streams import exposition

# Imported directly: a test run without the built extension fails here, loudly.
from prometheus_streams._speedups import strip_final_values
from prometheus_streams.receiver.app import warn_without_c_pass

MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lines built of what the pass looks at: spaces, tabs, newlines, value characters.
value_chars = st.sampled_from([*b"-+.0123456789eEaInNf"]).map(lambda c: bytes([c]))
pieces = st.one_of(
    value_chars,
    st.sampled_from([b" ", b"\t", b"\n", b"\r", b"#", b"x", b"{", b"}", b'"', b"\x00"]),
    st.integers(0, 45).map(lambda n: b"1" * n),  # runs around SHAPE_VALUE_MAX
)
bodies = st.one_of(st.binary(max_size=300), st.lists(pieces, max_size=120).map(b"".join))


# The fallback the C replaces: the regex.
regex_pass = exposition._strip_final_values


def test_the_receiver_uses_the_c_pass() -> None:
    assert exposition.NATIVE_SHAPE is strip_final_values
    assert exposition.strip_final_values is strip_final_values


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n",
        b"m 1",  # no newline: nothing ends the value
        b"m 1\n",
        b"m  1\n",
        b" 1\n",  # the line is only a value
        b"1\n",  # no space before it
        b"m\t1\n",  # a tab is not a space here
        b"m 1 \n",  # nothing between the space and the newline
        b"m 1\r\n",
        b"m 1 1700000000000\n",  # a timestamp is what goes
        b'm{a="1 2"} 3\nn 4\n\nq NaN\nr +Inf\ns -1.5e-07\n',
        b"m " + b"1" * 40 + b"\n",  # the longest value taken out
        b"m " + b"1" * 41 + b"\n",  # one longer: left in
        b"1" * 41 + b"\n",
        b"a 1\nb 2\nc 3",
        b"# HELP m A help text ending in 2\n# TYPE m counter\nm 2\n",
        b"\n\n 1\n 2\n",
    ],
)
def test_matches_the_regex_on_edge_cases(body: bytes) -> None:
    assert strip_final_values(body) == regex_pass(body)


def _page() -> bytes:
    """A node_exporter-like page: families with HELP and TYPE, labels, every kind of value."""
    values = ["0", "1", "-1", "3.14", "1.5e-07", "6.02E+23", "NaN", "+Inf", "-Inf", "1e+06"]
    lines = []
    for family in range(60):
        name = f"node_family_{family}_total"
        lines += [f"# HELP {name} Family {family}, in 2 words.", f"# TYPE {name} counter"]
        for series in range(8):
            labels = f'cpu="{series}",mode="idle {family}"'
            lines.append(f"{name}{{{labels}}} {values[(family + series) % len(values)]}")
    return ("\n".join(lines) + "\n").encode()


def test_matches_the_regex_on_a_node_page() -> None:
    page = _page()
    skeleton, values = strip_final_values(page)
    assert (skeleton, values) == regex_pass(page)
    assert values == 480 and len(skeleton) < len(page)


@MANY
@given(bodies)
@example(b"m " + b"9" * 40 + b"\nm " + b"9" * 41 + b"\n")
def test_matches_the_regex_on_random_bodies(body: bytes) -> None:
    assert strip_final_values(body) == regex_pass(body)


@pytest.mark.parametrize("value", ["text", bytearray(b"m 1\n"), memoryview(b"m 1\n"), None])
def test_takes_bytes_only(value: object) -> None:
    with pytest.raises(TypeError, match="expected bytes"):
        strip_final_values(value)  # type: ignore[arg-type]


def test_the_receiver_warns_only_without_the_c_pass(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not warn_without_c_pass()
        assert not caplog.records
        assert warn_without_c_pass(None)
    assert "built without its C pass" in caplog.text and "gcc python3-dev" in caplog.text


def test_body_shape_is_the_same_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    page = _page()
    fast = exposition.body_shape(page)
    monkeypatch.setattr(exposition, "strip_final_values", exposition._strip_final_values)
    assert exposition.body_shape(page) == fast
    changed = page.replace(b" 3.14\n", b" 2.71\n")
    assert changed != page and exposition.body_shape(changed) == fast
