"""Random and hostile input never raises anything but the project's own errors."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prometheus_streams import wire
from prometheus_streams.exposition import (
    BodyLimits,
    body_shape,
    rename_labels,
    strip_timestamps,
)

TOPIC = "prometheus"
LIMIT = 64 * 1024
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Exposition-like bytes: mostly the characters that matter to the regexes.
exposition_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.sampled_from(
            [
                *(b"a", b"_", b"{", b"}", b"=", b'"', b"\\", b",", b" ", b"\t", b"\n", b"#"),
                *(b"1", b"-", b".", b"e", b"+", b"Inf", b"NaN", b"job", b"instance", b"\r"),
                b"\x00",
            ]
        ),
        max_size=200,
    ).map(b"".join),
)
header_values = st.text(max_size=40)
tokens = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@FAST
@given(
    subject=st.text(max_size=80),
    payload=st.binary(max_size=200),
    headers=st.none() | st.dictionaries(st.text(max_size=30), header_values, max_size=8),
)
def test_decode_of_random_messages_raises_only_wire_errors(
    subject: str, payload: bytes, headers: dict[str, str] | None
) -> None:
    try:
        wire.decode(TOPIC, subject, payload, headers, LIMIT)
    except wire.WireError as exc:
        assert exc.reason


@FAST
@given(
    publisher=tokens,
    job=tokens,
    instance=tokens,
    body=st.binary(max_size=300),
    time_ms=st.integers(min_value=0, max_value=2**53),
    forged=st.dictionaries(
        st.sampled_from(
            [
                *(wire.H_PUBLISHER, wire.H_JOB, wire.H_INSTANCE, wire.H_SCRAPE_TIME),
                *(wire.H_VERSION, wire.H_CONTENT_ENCODING),
            ]
        ),
        header_values | st.text(alphabet="0123456789", min_size=15, max_size=5000),
        max_size=3,
    ),
    corrupt=st.booleans(),
)
def test_decode_of_tampered_valid_messages_raises_only_wire_errors(
    publisher: str,
    job: str,
    instance: str,
    body: bytes,
    time_ms: int,
    forged: dict[str, str],
    corrupt: bool,
) -> None:
    scrape = wire.Scrape(publisher, job, instance, time_ms, body)
    subject, payload, headers = wire.encode(TOPIC, scrape)
    if not forged and not corrupt:
        assert wire.decode(TOPIC, subject, payload, headers, LIMIT) == scrape
        return
    headers.update(forged)
    if corrupt:
        payload = payload[: len(payload) // 2] + b"\xff" + payload[len(payload) // 2 :]
    try:
        decoded = wire.decode(TOPIC, subject, payload, headers, LIMIT)
    except wire.WireError:
        return
    # Accepted only when it still agrees with the subject and has a sane time.
    assert decoded.group == (publisher, job, instance)
    assert decoded.scrape_time_ms < 10**16


@pytest.mark.parametrize("size", [LIMIT + 1, 10 * LIMIT])
def test_gzip_bomb_is_refused_as_too_large(size: int) -> None:
    scrape = wire.Scrape("dc1", "node", "web-1", 1, b"")
    subject, _, headers = wire.encode(TOPIC, scrape)
    bomb = gzip.compress(b"\0" * size)
    with pytest.raises(wire.WireError) as info:
        wire.decode(TOPIC, subject, bomb, headers, LIMIT)
    assert info.value.reason == "too_large"


@FAST
@given(tokens)
@example("")
@example("%")
@example(".")
@example("a.b:c/d e")
@example("é%2E")
def test_escape_token_round_trips_and_is_a_single_safe_token(value: str) -> None:
    token = wire.escape_token(value)
    assert token and "." not in token and "*" not in token and ">" not in token
    assert token.isascii() and " " not in token
    assert wire.unescape_token(token) == value


@FAST
@given(st.text(max_size=40))
@example("%2e")
@example("%ZZ")
@example("%FF")
@example("%")
@example("%%")
def test_unescape_of_random_tokens_raises_only_value_error(token: str) -> None:
    try:
        value = wire.unescape_token(token)
    except ValueError:
        return
    assert wire.escape_token(value) == token  # only canonical tokens are accepted


@FAST
@given(exposition_bytes)
@example(b"a 1 1700000000000\n")
@example(b"a 1 2 3\n")
@example(b'a{b="1 2"} 3 4\n')
def test_strip_timestamps_never_raises_and_is_idempotent(body: bytes) -> None:
    stripped, count = strip_timestamps(body)
    assert count >= 0
    assert len(stripped) <= len(body)
    again, second = strip_timestamps(stripped)
    assert (again, second) == (stripped, 0)


@FAST
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
            st.lists(
                st.tuples(
                    st.sampled_from(["job", "instance", "a", "b", "exported_job"]),
                    st.text(alphabet='ab =,{}"\\\n', max_size=8),
                ),
                max_size=4,
                unique_by=lambda pair: pair[0],
            ),
            st.integers(-(10**6), 10**6),
            st.none() | st.integers(0, 2**45),
        ),
        max_size=5,
    )
)
def test_strip_timestamps_removes_exactly_the_timestamps(
    samples: list[tuple[str, list[tuple[str, str]], int, int | None]],
) -> None:
    def line(name: str, labels: list[tuple[str, str]], value: int, ts: int | None) -> bytes:
        escaped = [
            (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in labels
        ]
        text = name + ("{" + ",".join(f'{k}="{v}"' for k, v in escaped) + "}" if labels else "")
        text += f" {value}" + (f" {ts}" if ts is not None else "")
        return text.encode() + b"\n"

    body = b"".join(line(*s) for s in samples)
    expected = b"".join(line(n, labels, v, None) for n, labels, v, _ in samples)
    stripped, count = strip_timestamps(body)
    assert stripped == expected
    assert count == sum(1 for *_, ts in samples if ts is not None)


@FAST
@given(exposition_bytes)
def test_rename_labels_never_raises_and_keeps_line_count(body: bytes) -> None:
    renamed, count = rename_labels(body, frozenset({b"job", b"instance"}))
    assert count >= 0
    assert renamed.count(b"\n") == body.count(b"\n")
    if count == 0:
        assert renamed == body


@FAST
@given(exposition_bytes, st.integers(1, 50), st.integers(1, 6))
def test_body_limits_never_raise(body: bytes, line_length: int, labels: int) -> None:
    result = BodyLimits(line_length, labels).violation(body)
    if result is not None:
        assert result[0] in ("line_too_long", "too_many_labels")
    if result is None:
        assert all(len(line) <= line_length for line in body.split(b"\n"))


@FAST
@given(st.binary(max_size=300), st.integers(1, 40))
def test_long_line_check_agrees_with_splitting_lines(body: bytes, limit: int) -> None:
    longest = max(len(line) for line in body.split(b"\n"))
    assert BodyLimits(limit, 3).line_too_long(body) == (longest > limit)


@FAST
@given(exposition_bytes)
def test_body_shape_never_raises_and_ignores_final_numbers(body: bytes) -> None:
    digest, values = body_shape(body)
    assert len(digest) == 32 and values <= body.count(b"\n")
    bumped = body.replace(b" 1\n", b" 2\n")
    assert body_shape(bumped) == (digest, values)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"short 1\n" + b"x" * 41 + b" 1\n", "line_too_long"),
        (b'm{a="1",b="2",c="3",d="4"} 1\n', "too_many_labels"),
        (b'm{a="1", b = "2" ,c="3",d="4",} 1\n', "too_many_labels"),
        (b'm{a="1",b="2",c="3"} 1\n', None),
        (b'm{a="=======",b="\\"=\\"="} 1\n', None),
        (b"# HELP m a=1 b=2 c=3 d=4 e=5\n", None),
        (b"", None),
    ],
)
def test_body_limits_examples(body: bytes, reason: str | None) -> None:
    result = BodyLimits(40, 3).violation(body)
    assert (result[0] if result else None) == reason


def test_body_limits_stay_linear_on_huge_bodies() -> None:
    # 8 MiB of one-label lines, and of lines with many `=` in a value: both
    # must be answered by regex passes (this would time out if quadratic).
    limits = BodyLimits(64 * 1024, 128)
    body = b'm{a="1"} 1\n' * (8 * 1024 * 1024 // 11)
    assert limits.violation(body) is None
    value = b"=" * 60_000
    body = (b'm{a="' + value + b'"} 1\n') * 100
    assert limits.violation(body) is None


def test_header_size_counts_what_nats_sends() -> None:
    assert wire.header_size({}) == len(b"NATS/1.0\r\n\r\n")
    assert wire.header_size({"A": "b"}) == len(b"NATS/1.0\r\nA: b\r\n\r\n")


@pytest.mark.parametrize("labels", ["[" * 5000, '{"a":' * 3000, "{" + "x" * 100])
def test_hostile_labels_header_is_a_wire_error(labels: str) -> None:
    scrape = wire.Scrape("dc1", "node", "web-1", 1, b"x 1\n")
    subject, payload, headers = wire.encode(TOPIC, scrape)
    headers[wire.H_LABELS] = labels
    with pytest.raises(wire.WireError) as info:
        wire.decode(TOPIC, subject, payload, headers, LIMIT)
    assert info.value.reason == "bad_header"
