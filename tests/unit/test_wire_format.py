"""The version 1 wire format: subject tokens, headers and the gzip body."""

from __future__ import annotations

import gzip
import re
import time
from dataclasses import replace

import pytest

from prometheus_streams import wire
from prometheus_streams.wire import Scrape, WireError, decode, encode, escape_token, unescape_token

TOPIC = "prometheus"
LIMIT = 1024 * 1024
ESCAPED_ALPHABET = re.compile(r"[A-Za-z0-9_%-]+")

TOKEN_VALUES = [
    "plain",
    "with_under-score",
    "127.0.0.1:9100",
    'a b/c"d',
    "",
    "%",
    "%%",
    "%25",
    "naïve",
    "a.b*>",
    "*",
    ">",
    "日本語",
    "emoji 🙂",
    "tab\there",
    "-",
]


@pytest.mark.parametrize("value", TOKEN_VALUES)
def test_escape_token_round_trips(value: str) -> None:
    assert unescape_token(escape_token(value)) == value


@pytest.mark.parametrize("value", TOKEN_VALUES)
def test_escaped_tokens_only_use_subject_safe_characters(value: str) -> None:
    assert ESCAPED_ALPHABET.fullmatch(escape_token(value))


def test_escape_token_keeps_plain_values_readable() -> None:
    assert escape_token("node_exporter-1") == "node_exporter-1"
    assert escape_token("127.0.0.1:9100") == "127%2E0%2E0%2E1%3A9100"
    assert escape_token("naïve") == "na%C3%AFve"


def test_escape_token_gives_distinct_tokens_for_empty_and_percent() -> None:
    assert escape_token("") == "%"
    assert escape_token("%") == "%25"


def test_escape_token_escapes_a_trailing_newline() -> None:
    assert escape_token("abc\n") == "abc%0A"
    assert unescape_token(escape_token("abc\n")) == "abc\n"


@pytest.mark.parametrize(
    "token",
    [
        "%2e",  # lowercase hex is not what escape_token emits
        "127%2e0",
        "a.b",  # a raw dot would split the subject
        "a b",
        "%zz",
        "%C3",  # a lone UTF-8 lead byte
        "%41",  # 'A' needs no escaping, so this is not canonical
        "%2",
        "",
        "naïve",
        "*",
        ">",
    ],
)
def test_unescape_token_rejects_non_canonical_tokens(token: str) -> None:
    with pytest.raises(ValueError, match="bad subject token"):
        unescape_token(token)


def test_unescape_token_names_invalid_utf8() -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        unescape_token("%C3")


BASE = Scrape(
    publisher="dc1-poller",
    job="node",
    instance="127.0.0.1:9100",
    scrape_time_ms=1_700_000_000_123,
    body=b"# TYPE foo gauge\nfoo 1\n",
)


def test_subject_for_escapes_each_token() -> None:
    assert (
        wire.subject_for(TOPIC, "dc1", "node", "127.0.0.1:9100")
        == "prometheus.dc1.node.127%2E0%2E0%2E1%3A9100"
    )


def test_encode_sets_subject_and_headers() -> None:
    scrape = BASE
    subject, payload, headers = encode(TOPIC, scrape)
    assert subject == "prometheus.dc1-poller.node.127%2E0%2E0%2E1%3A9100"
    assert headers == {
        "Nats-Msg-Id": "dc1-poller/node/127%2E0%2E0%2E1%3A9100/1700000000123",
        "Prometheus-Streams-Version": "1",
        "Prometheus-Streams-Publisher": "dc1-poller",
        "Prometheus-Streams-Job": "node",
        "Prometheus-Streams-Instance": "127.0.0.1:9100",
        "Prometheus-Streams-Scrape-Time-Ms": "1700000000123",
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        "Content-Encoding": "gzip",
    }
    assert gzip.decompress(payload) == scrape.body


def test_encode_is_deterministic_whatever_the_clock_says(monkeypatch: pytest.MonkeyPatch) -> None:
    # A retried publish must be the same bytes: no time in the gzip header.
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    first = encode(TOPIC, BASE)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    assert encode(TOPIC, BASE) == first
    assert first[1][4:8] == b"\0\0\0\0"  # the gzip header's MTIME field


@pytest.mark.parametrize(
    "scrape",
    [
        BASE,
        replace(BASE, publisher="naïve host", job='a b/c"d', instance="", body=b""),
        replace(BASE, publisher="%", job="a.b*>", instance="x", scrape_time_ms=0),
    ],
)
def test_decode_reverses_encode(scrape: Scrape) -> None:
    subject, payload, headers = encode(TOPIC, scrape)
    assert decode(TOPIC, subject, payload, headers, LIMIT) == scrape


def test_decode_accepts_a_dotted_topic() -> None:
    scrape = BASE
    subject, payload, headers = encode("metrics.dc1", scrape)
    assert decode("metrics.dc1", subject, payload, headers, LIMIT) == scrape


def test_scrape_group_is_publisher_job_instance() -> None:
    assert BASE.group == ("dc1-poller", "node", "127.0.0.1:9100")


def _encoded() -> tuple[str, bytes, dict[str, str]]:
    return encode(TOPIC, BASE)


def _reason(
    subject: str,
    payload: bytes,
    headers: dict[str, str] | None,
    limit: int = LIMIT,
    topic: str = TOPIC,
) -> str:
    with pytest.raises(WireError) as caught:
        decode(topic, subject, payload, headers, limit)
    return caught.value.reason


def test_decode_rejects_subject_outside_topic() -> None:
    subject, payload, headers = _encoded()
    assert _reason(subject, payload, headers, topic="other") == "bad_subject"
    # A topic that is only a prefix of the first token is not the topic.
    assert _reason(subject, payload, headers, topic="prom") == "bad_subject"


@pytest.mark.parametrize(
    "subject",
    ["prometheus.a.b", "prometheus.a.b.c.d", "prometheus.a", "prometheus."],
)
def test_decode_rejects_wrong_token_count(subject: str) -> None:
    _, payload, headers = _encoded()
    assert _reason(subject, payload, headers) == "bad_subject"


def test_decode_rejects_non_canonical_subject_token() -> None:
    _, payload, headers = _encoded()
    assert _reason("prometheus.dc1-poller.node.%41", payload, headers) == "bad_subject"


@pytest.mark.parametrize(
    "header",
    ["Prometheus-Streams-Publisher", "Prometheus-Streams-Job", "Prometheus-Streams-Instance"],
)
def test_decode_rejects_header_disagreeing_with_subject(header: str) -> None:
    subject, payload, headers = _encoded()
    headers[header] = "somebody-else"
    assert _reason(subject, payload, headers) == "header_mismatch"


def test_decode_rejects_missing_grouping_header() -> None:
    subject, payload, headers = _encoded()
    del headers["Prometheus-Streams-Job"]
    assert _reason(subject, payload, headers) == "header_mismatch"


def test_decode_rejects_missing_version() -> None:
    subject, payload, headers = _encoded()
    del headers["Prometheus-Streams-Version"]
    assert _reason(subject, payload, headers) == "bad_version"
    assert _reason(subject, payload, None) == "bad_version"


def test_decode_rejects_unknown_version() -> None:
    subject, payload, headers = _encoded()
    headers["Prometheus-Streams-Version"] = "2"
    assert _reason(subject, payload, headers) == "bad_version"


@pytest.mark.parametrize("value", ["", "soon", "1.5", "0x10"])
def test_decode_rejects_bad_scrape_time(value: str) -> None:
    subject, payload, headers = _encoded()
    headers["Prometheus-Streams-Scrape-Time-Ms"] = value
    assert _reason(subject, payload, headers) == "bad_header"


def test_decode_rejects_missing_scrape_time() -> None:
    subject, payload, headers = _encoded()
    del headers["Prometheus-Streams-Scrape-Time-Ms"]
    assert _reason(subject, payload, headers) == "bad_header"


def test_decode_rejects_unknown_content_encoding() -> None:
    subject, payload, headers = _encoded()
    headers["Content-Encoding"] = "br"
    assert _reason(subject, payload, headers) == "bad_header"


def test_decode_rejects_corrupt_gzip() -> None:
    subject, _, headers = _encoded()
    assert _reason(subject, b"this is not gzip", headers) == "bad_compression"


def test_decode_rejects_truncated_gzip() -> None:
    subject, payload, headers = _encoded()
    assert _reason(subject, payload[:-6], headers) == "bad_compression"


def test_decode_rejects_empty_gzip_payload() -> None:
    subject, _, headers = _encoded()
    assert _reason(subject, b"", headers) == "bad_compression"


def test_decode_rejects_trailing_garbage_after_gzip() -> None:
    subject, payload, headers = _encoded()
    assert _reason(subject, payload + b"garbage", headers) == "bad_compression"


def test_decode_refuses_a_gzip_bomb() -> None:
    subject, _, headers = _encoded()
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < LIMIT  # the compressed form passes any payload check
    assert _reason(subject, bomb, headers, limit=LIMIT) == "too_large"


def test_decode_accepts_gzip_body_exactly_at_limit() -> None:
    body = b"x" * 1000
    subject, payload, headers = encode(TOPIC, replace(BASE, body=body))
    assert decode(TOPIC, subject, payload, headers, limit=1000).body == body
    assert _reason(subject, payload, headers, limit=999) == "too_large"


def test_decode_takes_missing_encoding_as_identity() -> None:
    subject, _, headers = _encoded()
    del headers["Content-Encoding"]
    body = b"foo 1\n"
    assert decode(TOPIC, subject, body, headers, LIMIT).body == body


def test_decode_rejects_identity_body_over_limit() -> None:
    subject, _, headers = _encoded()
    headers["Content-Encoding"] = "identity"
    assert decode(TOPIC, subject, b"x" * 100, headers, limit=100).body == b"x" * 100
    assert _reason(subject, b"x" * 101, headers, limit=100) == "too_large"


def test_headers_decode_alone_and_the_body_after() -> None:
    # The receiver reads group and time first and may inflate the body later.
    subject, payload, headers = encode(TOPIC, BASE)
    scrape, encoding = wire.decode_headers(TOPIC, subject, headers)
    assert scrape == replace(BASE, body=b"") and encoding == "gzip"
    assert wire.decode_body(payload, encoding, LIMIT) == BASE.body
    with pytest.raises(WireError) as broken:
        wire.decode_body(b"\x1f\x8b garbage", encoding, LIMIT)
    assert broken.value.reason == "bad_compression"
    headers["Content-Encoding"] = "br"
    with pytest.raises(WireError) as unknown:
        wire.decode_headers(TOPIC, subject, headers)
    assert unknown.value.reason == "bad_header"


def test_wire_error_carries_reason_and_message() -> None:
    error = WireError("too_large", "body inflates beyond 10 bytes")
    assert error.reason == "too_large"
    assert str(error) == "body inflates beyond 10 bytes"


def test_decompress_returns_body_within_limit() -> None:
    assert wire.decompress(gzip.compress(b"hello"), 5) == b"hello"


def test_beyond_max_age_is_measured_from_the_scrape_time(monkeypatch: pytest.MonkeyPatch) -> None:
    scrape = replace(BASE, scrape_time_ms=1_000_000)
    monkeypatch.setattr(time, "time", lambda: 1_060.0)  # 60 s after the scrape
    assert scrape.beyond(59.0) == pytest.approx(60.0)
    assert scrape.beyond(60.0) is None
    assert scrape.beyond(0) is None  # no limit
