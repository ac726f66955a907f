"""What the poller takes for valid exposition text: what the Pushgateway and Prometheus take.

tests/integration/test_exposition_pushgateway.py PUTs every case to a real
Pushgateway and expects its verdict, but for the differences it names.
"""

from __future__ import annotations

import logging

import pytest
from exposition_cases import INVALID, VALID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prometheus_streams import exposition_check

# Imported directly: a test run without the built extension fails here, loudly.
from prometheus_streams._speedups import check_exposition
from prometheus_streams.exposition_check import exposition_error, first_error
from prometheus_streams.poller.app import warn_without_c_check


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
def test_valid_pages_pass(body: bytes) -> None:
    assert first_error(body) is None
    assert check_exposition(body) == 0
    assert exposition_error(body) is None


@pytest.mark.parametrize(("body", "line", "words"), INVALID.values(), ids=INVALID.keys())
def test_invalid_pages_fail_naming_the_line(body: bytes, line: int, words: str) -> None:
    error = exposition_error(body)
    assert error is not None
    assert error.startswith(f"line {line}: ")
    assert words in error
    assert check_exposition(body) in (line, -1)


def test_the_poller_uses_the_c_pass() -> None:
    assert exposition_check.NATIVE_CHECK is check_exposition


def test_the_poller_warns_only_without_the_c_pass(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not warn_without_c_check()
        assert not caplog.records
        assert warn_without_c_check(None)
    assert "built without its C pass" in caplog.text and "gcc python3-dev" in caplog.text


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        (b"m{" + b",".join(b'l%d="v"' % i for i in range(70)) + b"} 1\n", True),
        (b"m{" + b",".join(b'l%d="v"' % (i % 69) for i in range(70)) + b"} 1\n", False),
        (b"m 1 " + b"9" * 19 + b"\n", False),
        (b"m 1 " + b"1" * 19 + b"\n", True),
        (b"m 1e" + b"0" * 80 + b"1\n", True),
    ],
)
def test_what_the_c_pass_leaves_to_the_walk(body: bytes, valid: bool) -> None:
    # Many labels, long timestamps and long numbers: C says "undecided".
    assert check_exposition(body) == -1
    assert (exposition_error(body) is None) == valid


def _node_like_page() -> bytes:
    lines = []
    for family in range(40):
        name = f"node_thing_{family}_seconds"
        kind = ("counter", "gauge", "histogram", "summary")[family % 4]
        lines += [f"# HELP {name} Thing {family}, in seconds.", f"# TYPE {name} {kind}"]
        for series in range(6):
            labels = f'device="sd{series}",mode="idle é"'
            if kind == "histogram":
                for le in ("0.5", "1", "+Inf"):
                    lines.append(f'{name}_bucket{{{labels},le="{le}"}} {series}')
                lines += [f"{name}_sum{{{labels}}} 1.5e-07", f"{name}_count{{{labels}}} 3"]
            elif kind == "summary":
                lines.append(f'{name}{{{labels},quantile="0.99"}} NaN')
                lines += [f"{name}_sum{{{labels}}} 2", f"{name}_count{{{labels}}} 3"]
            else:
                lines.append(f"{name}{{{labels}}} {family * series}.25")
    return ("\n".join(lines) + "\n").encode()


def test_a_node_like_page_passes() -> None:
    page = _node_like_page()
    assert check_exposition(page) == 0
    assert first_error(page) is None


# Bodies built of what the rules look at, to find where C and the walk part.
pieces = st.sampled_from(
    [
        b" ", b"\t", b"\n", b"\r", b"#", b"# HELP ", b"# TYPE ", b"HELP", b"TYPE", b"m", b"m_sum",
        b"m_count", b"m_bucket", b"_", b":", b"{", b"}", b"=", b",", b'"', b"\\", b"\\n", b'\\"',
        b"\\\\", b"1", b"-", b"+", b".", b"e", b"Inf", b"NaN", b"le", b"quantile", b"__name__",
        b"summary", b"histogram", b"gauge", b"counter", b"untyped", b"\xff", b"\xc3\xa9",
        b"\xe2\x9c", b"9" * 25, b"e999", b"0x1",
    ]
)  # fmt: skip
bodies = st.one_of(st.binary(max_size=200), st.lists(pieces, max_size=60).map(b"".join))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
@example(b'# TYPE m summary\nm{quantile="1",quantile="2"} 1\n')
@example(b'# TYPE m histogram\nm_bucket{le="1",a="",a=""} 1\n')
@example(b"# HELP m_sum x\n# TYPE m summary\n# HELP m_sum y\n")
def test_the_c_pass_agrees_with_the_walk(body: bytes) -> None:
    native = check_exposition(body)
    error = first_error(body)
    if native == 0:
        assert error is None
    elif native > 0:
        assert error is not None and error.startswith(f"line {native}: ")
