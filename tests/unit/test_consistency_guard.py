"""The receiver's own consistency check, standing in for the Pushgateway's."""

from __future__ import annotations

import pytest

from prometheus_streams.exposition import body_shape, count_samples, shape_covers_samples
from prometheus_streams.receiver.consistency import (
    CheckedShapes,
    ConsistencyError,
    TypeRegistry,
    check_body,
)

NODE = (
    b"# HELP a_total x\n# TYPE a_total counter\n"
    b'a_total{cpu="0",mode="idle x"} 1\na_total{cpu="1"} 2\n'
    b"# TYPE b gauge\nb 3\n"
)


def test_valid_body_returns_its_types() -> None:
    assert check_body(NODE) == {(b"a_total", b"counter"), (b"b", b"gauge")}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"a 1\na 2\n", "appears twice"),
        (b'a{x="1"} 1\nb 1\na{x="1"} 5\n', "appears twice"),
        (b"1bad 1\n", "invalid metric name"),
        (b"bad-name 1\n", "invalid metric name"),
        (b'a{x="1" 1\n', "invalid metric name"),
    ],
)
def test_bad_bodies_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(ConsistencyError, match=problem):
        check_body(body)


def test_same_labels_with_different_values_are_distinct_series() -> None:
    body = b'# TYPE a gauge\na{x="1"} 1\na{x="2"} 1\na{x="1 2"} 1\n'
    assert check_body(body) == {(b"a", b"gauge")}
    with pytest.raises(ConsistencyError, match="appears twice"):
        check_body(body + b'a{x="2"} 5\n')


def test_type_conflict_across_groups_is_found_and_cleared_when_the_group_goes() -> None:
    registry = TypeRegistry()
    counter = frozenset({(b"m", b"counter")})
    gauge = frozenset({(b"m", b"gauge")})
    registry.record("/g1", counter)
    assert registry.conflict("/g2", gauge) == "metric m is gauge here but counter in another group"
    assert registry.conflict("/g2", counter) is None
    # the only group using m may change its type
    assert registry.conflict("/g1", gauge) is None
    registry.record("/g1", None)
    assert registry.conflict("/g2", gauge) is None


def test_record_returns_the_previous_types_for_a_rollback() -> None:
    registry = TypeRegistry()
    first = frozenset({(b"m", b"counter")})
    assert registry.record("/g", first) is None
    second = frozenset({(b"m", b"gauge")})
    assert registry.record("/g", second) == first
    registry.record("/g", first)  # the push of `second` failed: roll back
    assert registry.conflict("/other", second) is not None


def test_a_shape_shared_by_several_groups_cannot_change_while_another_holds_it() -> None:
    registry = TypeRegistry()
    counter = frozenset({(b"m", b"counter"), (b"n", b"gauge")})
    gauge = frozenset({(b"m", b"gauge"), (b"n", b"gauge")})
    registry.record("/g1", counter)
    registry.record("/g2", counter)
    assert registry.conflict("/g3", counter) is None  # a known shape: no check needed
    assert registry.conflict("/g1", gauge) is not None  # /g2 still has m as counter
    registry.record("/g2", None)
    assert registry.conflict("/g1", gauge) is None


# -- known shapes --------------------------------------------------------------

SHAPED = (
    b"# HELP a_total Seconds since 1970\n# TYPE a_total counter\n"
    b'a_total{cpu="0"} 1\na_total{cpu="1"} 2.5e+06\n# TYPE b gauge\nb NaN\n'
)


def _covered(body: bytes) -> bool:
    return shape_covers_samples(body, body_shape(body), count_samples(body))


def test_bodies_differing_in_values_only_share_a_shape() -> None:
    again = SHAPED.replace(b"} 1\n", b"} 7\n").replace(b"b NaN", b"b -Inf")
    assert body_shape(again) == body_shape(SHAPED)
    # the HELP line's final number is counted apart from the samples
    assert _covered(SHAPED) and _covered(again)


@pytest.mark.parametrize(
    "changed",
    [
        SHAPED.replace(b'cpu="1"', b'cpu="0"'),  # a duplicate series
        SHAPED.replace(b"# TYPE b gauge", b"# TYPE b counter"),
        SHAPED.replace(b"b NaN", b"b NaN 1700000000000"),  # a timestamp
        SHAPED.replace(b'a_total{cpu="0"}', b'a_total{cpu="0",job="x"}'),
        SHAPED.replace(b"b NaN", b"b_2 NaN"),
        SHAPED + b"c 1\n",
    ],
)
def test_any_change_but_a_value_changes_the_shape(changed: bytes) -> None:
    assert body_shape(changed) != body_shape(SHAPED)


@pytest.mark.parametrize(
    "body",
    [
        b"a\t1\n",  # a tab: the value stays in the shape
        b"a 0x1p3\n",  # a spelling the shape does not take out
        b"a 1",  # no final newline
    ],
)
def test_shapes_that_keep_a_value_do_not_cover_their_samples(body: bytes) -> None:
    # (a timestamp is taken out instead of the value: the receiver records no
    # shape of a body it had to strip timestamps from)
    assert not _covered(body)


def test_checked_shapes_share_equal_type_sets_and_start_again_when_full() -> None:
    shapes = CheckedShapes(limit=2)
    first = frozenset({(b"a", b"gauge")})
    shapes.add((b"x", 1), first)
    shapes.add((b"y", 1), frozenset({(b"a", b"gauge")}))
    assert shapes.get((b"y", 1)) is first
    shapes.add((b"z", 1), first)
    assert len(shapes) == 1 and shapes.get((b"x", 1)) is None
    assert shapes.get((b"z", 1)) == first
