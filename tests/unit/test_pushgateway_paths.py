"""Pushgateway grouping-key paths and how push outcomes are classified."""

from __future__ import annotations

import base64

import pytest
from yarl import URL

from prometheus_streams.receiver.pushgateway import PushResult, group_path


def test_group_path_plain_values() -> None:
    assert group_path("job", "inst", None) == "/metrics/job/job/instance/inst"


def test_group_path_appends_publisher() -> None:
    assert group_path("node", "h:9100", "dc1") == (
        "/metrics/job/node/instance/h%3A9100/publisher/dc1"
    )


def test_group_path_base64_encodes_values_with_slash() -> None:
    path = group_path("a/b", "x/y/z", "p/q")
    expected = "/".join(
        [
            "/metrics",
            "job@base64",
            base64.urlsafe_b64encode(b"a/b").decode(),
            "instance@base64",
            base64.urlsafe_b64encode(b"x/y/z").decode(),
            "publisher@base64",
            base64.urlsafe_b64encode(b"p/q").decode(),
        ]
    )
    assert path == expected


def test_group_path_base64_uses_the_urlsafe_alphabet() -> None:
    # Standard base64 of b"a/>>>?" is "YS8+Pj4/": a "/" there would split the path.
    assert group_path("j", "a/>>>?", None) == "/metrics/job/j/instance@base64/YS8-Pj4_"


def test_group_path_encodes_empty_value_as_lone_equals() -> None:
    assert group_path("job", "", None) == "/metrics/job/job/instance@base64/="
    assert group_path("", "i", "") == "/metrics/job@base64/=/instance/i/publisher@base64/="


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("a b", "a%20b"),
        ('say "hi"', "say%20%22hi%22"),
        ("50%", "50%25"),
        ("a?b#c", "a%3Fb%23c"),
        ("naïve", "na%C3%AFve"),
        ("127.0.0.1:9100", "127.0.0.1%3A9100"),
    ],
)
def test_group_path_percent_encodes_other_special_characters(value: str, segment: str) -> None:
    assert group_path("job", value, None) == f"/metrics/job/job/instance/{segment}"


def test_group_path_survives_url_parsing() -> None:
    path = group_path("node", 'a b"c', "dc1")
    assert URL("http://gateway:9091" + path).raw_path == path


@pytest.mark.parametrize(("job", "instance"), [("..", "i"), ("j", "."), ("j", "..")])
def test_group_path_is_not_rewritten_by_dot_segments(job: str, instance: str) -> None:
    path = group_path(job, instance, None)
    assert URL("http://gateway:9091" + path).raw_path == path


@pytest.mark.parametrize("status", [200, 202, 204])
def test_push_result_2xx_is_ok(status: int) -> None:
    result = PushResult(status)
    assert result.ok
    assert not result.permanent


@pytest.mark.parametrize("status", [0, 199, 300, 400, 404, 500, 503])
def test_push_result_other_statuses_are_not_ok(status: int) -> None:
    assert not PushResult(status, "detail").ok


@pytest.mark.parametrize("status", [400, 413, 422])
def test_push_result_client_errors_are_permanent(status: int) -> None:
    assert PushResult(status).permanent


@pytest.mark.parametrize("status", [0, 404, 429, 500, 502, 503])
def test_push_result_other_failures_are_retryable(status: int) -> None:
    assert not PushResult(status).permanent
