"""The poller's C passes (_speedups.c count_samples, has_health_line) agree with the regexes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prometheus_streams import exposition

# Imported directly: a test run without the built extension fails here, loudly.
from prometheus_streams._speedups import count_samples, has_health_line

MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of what the passes look at: line starts, blanks, comments, the health names.
pieces = st.sampled_from(
    [
        b"up",
        b"scrape_duration_seconds",
        b"scrape_samples_scraped",
        b"scrape_",
        b"# HELP ",
        b"#\tTYPE\t",
        b"#HELP ",
        b"# TYPE",
        b"HELP",
        b" ",
        b"\t",
        b"\n",
        b"\r",
        b"\x0b",
        b"\x0c",
        b"\x00",
        b"{",
        b"#",
        b"x",
        b"1",
        b'{a="b"} 1',
    ]
)
bodies = st.one_of(st.binary(max_size=300), st.lists(pieces, max_size=80).map(b"".join))

EDGES = [
    b"",
    b"\n",
    b"m 1",
    b"  m 1\n#c\n \t# d\n\n\x00\n \x0b\n\x0c\nb 2\r\n\r\n",
    b"up 1\n",
    b"up",
    b"upx 1\n",
    b"node_up 1\n",
    b'm 1\nup{a="b"} 1\n',
    b" up 1\n",  # not at the line start: no health line for the regexes either
    b"# HELP up The target is up.\n# TYPE up gauge\n",
    b"# TYPE scrape_samples_scraped gauge\n",
    b"#\tHELP\tscrape_duration_seconds\n",
    b"# HELPup 1\n",
    b"scrape_duration_seconds_total 1\n",
    b"x 1\nscrape_samples_scraped 3",
]


def test_the_poller_uses_the_c_passes() -> None:
    assert exposition.count_samples is count_samples
    assert exposition.NATIVE_HEALTH is has_health_line


@pytest.mark.parametrize("body", EDGES)
def test_count_matches_the_regex_on_edge_cases(body: bytes) -> None:
    assert count_samples(body) == exposition._count_samples(body)


@pytest.mark.parametrize("body", EDGES)
def test_health_lines_are_dropped_as_by_the_regexes(body: bytes) -> None:
    assert exposition.drop_health_series(body) == exposition._drop_health_series(body)
    if exposition._drop_health_series(body)[1]:
        assert has_health_line(body)


@MANY
@given(bodies)
@example(b"\n\n x\n")
def test_count_matches_the_regex_on_random_bodies(body: bytes) -> None:
    assert count_samples(body) == exposition._count_samples(body)


@MANY
@given(bodies)
def test_no_health_line_means_nothing_to_drop(body: bytes) -> None:
    if not has_health_line(body):
        assert exposition._drop_health_series(body) == (body, 0)
    assert exposition.drop_health_series(body) == exposition._drop_health_series(body)


def test_a_node_page_has_no_health_line() -> None:
    page = b"".join(
        b"# HELP node_network_up Value is 1 if operstate is 'up'.\n"
        b"# TYPE node_network_up gauge\n"
        b'node_network_up{device="eth%d"} 1\n' % i
        for i in range(50)
    )
    assert not has_health_line(page) and count_samples(page) == 50


@pytest.mark.parametrize("value", ["text", bytearray(b"m 1\n"), memoryview(b"m 1\n"), None])
def test_take_bytes_only(value: object) -> None:
    with pytest.raises(TypeError, match="expected bytes"):
        count_samples(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected bytes"):
        has_health_line(value)  # type: ignore[arg-type]
