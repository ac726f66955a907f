"""Edits to exposition text: sample counts, timestamps, grouping labels, health series."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from prometheus_streams.exposition import (
    count_samples,
    drop_health_series,
    health_series,
    rename_labels,
    strip_timestamps,
    with_health,
)

GROUPING = frozenset({b"job", b"instance"})


def _samples(text: bytes) -> dict[str, float]:
    """name -> value of every unlabelled sample, via the reference parser."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if not sample.labels
    }


# -- count_samples -------------------------------------------------------------


def test_count_samples_skips_comments_and_blank_lines() -> None:
    body = (
        b'# HELP foo x\n# TYPE foo gauge\nfoo 1\n\nfoo{a="b"} 2\n   \n  # indented comment\nbar 3'
    )
    assert count_samples(body) == 3


def test_count_samples_of_empty_body_is_zero() -> None:
    assert count_samples(b"") == 0
    assert count_samples(b"\n\n") == 0


# -- strip_timestamps ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "stripped"),
    [
        (b"foo 1 1700000000000", b"foo 1"),
        (b'foo{a="b"} 2.5e3 -17', b'foo{a="b"} 2.5e3'),
        (b"foo:bar_total 1 2", b"foo:bar_total 1"),
        (b"foo +Inf 12", b"foo +Inf"),
        (b"foo -Inf 12", b"foo -Inf"),
        (b"foo NaN 12", b"foo NaN"),
        (b"foo .5 12", b"foo .5"),
        (b"foo 1. 12", b"foo 1."),
        (b"foo 1.5E+10 12", b"foo 1.5E+10"),
        (b"foo\t1\t12", b"foo\t1"),
        (b'foo{a="x 1"} 3 4', b'foo{a="x 1"} 3'),
        (b'foo{a="} 1 2"} 3 4', b'foo{a="} 1 2"} 3'),
        (b'foo{a="q\\" 1 2"} 3 4', b'foo{a="q\\" 1 2"} 3'),
        (b'foo{a="b",c="d e"}  7  8  ', b'foo{a="b",c="d e"}  7'),
    ],
)
def test_strip_timestamps_removes_the_timestamp(line: bytes, stripped: bytes) -> None:
    assert strip_timestamps(line) == (stripped, 1)


@pytest.mark.parametrize(
    "line",
    [
        b'foo{a="x 1"} 2',
        b"foo 1",
        b"foo2 1",
        b'foo{a="x 1 2"} 3',
        b'foo{a="1 2"} +Inf',
        b"# HELP foo 1 2",
        b"# TYPE foo gauge",
        b"",
    ],
)
def test_strip_timestamps_leaves_lines_without_timestamp(line: bytes) -> None:
    assert strip_timestamps(line) == (line, 0)


def test_strip_timestamps_counts_every_line_it_changes() -> None:
    body = (
        b"# HELP foo help with 1 2\n"
        b"# TYPE foo gauge\n"
        b'foo{a="x"} 1 100\n'
        b'foo{a="y z"} 2\n'
        b'foo{a="w"} NaN 300\n'
    )
    out, count = strip_timestamps(body)
    assert count == 2
    assert out == (
        b"# HELP foo help with 1 2\n"
        b"# TYPE foo gauge\n"
        b'foo{a="x"} 1\n'
        b'foo{a="y z"} 2\n'
        b'foo{a="w"} NaN\n'
    )
    values = [s.value for f in text_string_to_metric_families(out.decode()) for s in f.samples]
    assert values[:2] == [1.0, 2.0]
    assert math.isnan(values[2])
    assert all(
        s.timestamp is None for f in text_string_to_metric_families(out.decode()) for s in f.samples
    )


# -- rename_labels -------------------------------------------------------------


def test_rename_labels_renames_job_and_instance() -> None:
    line = b'foo{job="a",instance="b",x="y"} 1'
    assert rename_labels(line, GROUPING) == (
        b'foo{exported_job="a",exported_instance="b",x="y"} 1',
        2,
    )


def test_rename_labels_ignores_names_inside_values() -> None:
    line = b'foo{a="job=x",b="instance=\\"y\\""} 1'
    assert rename_labels(line, GROUPING) == (line, 0)


def test_rename_labels_handles_escaped_quotes_in_values() -> None:
    line = b'foo{a="x\\",job=\\"y",job="z"} 1'
    assert rename_labels(line, GROUPING) == (b'foo{a="x\\",job=\\"y",exported_job="z"} 1', 1)


def test_rename_labels_handles_escaped_backslash_before_closing_quote() -> None:
    line = b'foo{a="x\\\\",job="z"} 1'
    assert rename_labels(line, GROUPING) == (b'foo{a="x\\\\",exported_job="z"} 1', 1)


def test_rename_labels_avoids_clash_with_existing_exported_label() -> None:
    line = b'foo{job="a",exported_job="b"} 1'
    assert rename_labels(line, GROUPING) == (
        b'foo{exported_exported_job="a",exported_job="b"} 1',
        1,
    )


def test_rename_labels_only_matches_whole_label_names() -> None:
    body = b'foo{myjob="a",job_id="b",instances="c"} 1'
    assert rename_labels(body, GROUPING) == (body, 0)


def test_rename_labels_keeps_comments_and_unlabelled_lines() -> None:
    body = b'# HELP foo about job="x"\n# TYPE foo gauge\nfoo 1\nfoo{job="a"} 2\n'
    out, count = rename_labels(body, GROUPING)
    assert count == 1
    assert out == b'# HELP foo about job="x"\n# TYPE foo gauge\nfoo 1\nfoo{exported_job="a"} 2\n'


@pytest.mark.parametrize(
    "line",
    [
        b'foo{job="a" 1',  # no closing brace
        b'foo{job="a} 1',  # unterminated value
        b"foo{job=a} 1",  # unquoted value
        b'foo{job="a";instance="b"} 1',  # bad separator
    ],
)
def test_rename_labels_leaves_unparsable_lines_alone(line: bytes) -> None:
    assert rename_labels(line, GROUPING) == (line, 0)


def test_rename_labels_accepts_trailing_comma_and_spaces() -> None:
    line = b'foo{ job="a" , instance="b", } 1'
    assert rename_labels(line, GROUPING) == (
        b'foo{ exported_job="a" , exported_instance="b", } 1',
        2,
    )


def test_rename_labels_result_parses_with_renamed_labels() -> None:
    body = b'# TYPE foo gauge\nfoo{job="a",instance="b"} 1\n'
    out, _ = rename_labels(body, GROUPING)
    (family,) = text_string_to_metric_families(out.decode())
    assert family.samples[0].labels == {"exported_job": "a", "exported_instance": "b"}


@pytest.mark.parametrize("line", [b'foo{job ="a"} 1', b'foo{job= "a"} 1'])
def test_rename_labels_handles_blanks_around_equals(line: bytes) -> None:
    out, count = rename_labels(line, GROUPING)
    assert count == 1
    assert b"exported_job" in out


# -- drop_health_series ----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"up 1",
        b"up\t0",
        b'up{job="x"} 0',
        b"# TYPE up gauge",
        b"# HELP up whether the target is up",
        b"# HELP scrape_duration_seconds how long it took",
        b"scrape_duration_seconds 0.1",
        b'scrape_samples_scraped{a="b"} 3',
        b"# TYPE scrape_samples_scraped gauge",
    ],
)
def test_drop_health_series_removes_health_lines(line: bytes) -> None:
    assert drop_health_series(line + b"\n") == (b"", 1)


@pytest.mark.parametrize(
    "line",
    [
        b"upx 1",
        b"up_time 1",
        b"# HELP up_time seconds up",
        b"# TYPE upx gauge",
        b"# a comment about up",
        b"scrape_series_added 1",
        b"scrape_duration_seconds_total 1",
        b'foo{a="up"} 1',
    ],
)
def test_drop_health_series_keeps_similar_names(line: bytes) -> None:
    assert drop_health_series(line + b"\n") == (line + b"\n", 0)


def test_drop_health_series_keeps_surrounding_lines() -> None:
    body = b"a 1\n# TYPE up gauge\nup 1\nb 2\nupx 3\nup 0"
    assert drop_health_series(body) == (b"a 1\nb 2\nupx 3\n", 3)


def test_drop_health_series_without_candidates_is_a_no_op() -> None:
    body = b"foo 1\nbar 2\n"
    assert drop_health_series(body) == (body, 0)


# -- health series ---------------------------------------------------------------


def test_health_series_for_a_failed_scrape_says_up_0() -> None:
    text = health_series(False, 0.25, 0)
    assert _samples(text) == {
        "up": 0.0,
        "scrape_duration_seconds": 0.25,
        "scrape_samples_scraped": 0.0,
    }


def test_with_health_appends_up_1_and_keeps_body() -> None:
    body = b"# TYPE foo gauge\nfoo 42"  # no final newline
    text = with_health(body, 1.5, 1)
    assert text.startswith(b"# TYPE foo gauge\nfoo 42\n")
    assert _samples(text) == {
        "foo": 42.0,
        "up": 1.0,
        "scrape_duration_seconds": 1.5,
        "scrape_samples_scraped": 1.0,
    }


def test_with_health_of_empty_body_is_just_health() -> None:
    assert with_health(b"", 0.0, 0) == health_series(True, 0.0, 0)


def test_health_series_are_what_drop_health_series_removes() -> None:
    text = with_health(b"foo 1\n", 0.1, 1)
    assert drop_health_series(text) == (b"foo 1\n", 6)
