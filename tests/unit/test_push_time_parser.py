"""Reading push times from the Pushgateway's /metrics text, in any chunking."""

from __future__ import annotations

import pytest

from prometheus_streams.receiver.stale import MAX_LINE, PushTimeParser

PAGE = (
    b"# HELP a_metric A.\n# TYPE a_metric gauge\n"
    b'a_metric{instance="x",job="j",note="' + b"y" * (MAX_LINE + 10) + b'"} 1\n'
    b"# TYPE push_failure_time_seconds gauge\n"
    b'push_failure_time_seconds{instance="a",job="j",publisher="p"} 0\n'
    b'push_failure_time_seconds{instance="b\\"\\\\\\n",job="j",publisher="p"} 1.5e+09\n'
    b'push_failure_time_seconds{"odd.name"="v",job="j"} 7\n'
    b"# TYPE push_time_seconds gauge\n"
    b'push_time_seconds{instance="a",job="j",publisher="p"} 1.7e+09\n'
    b'push_time_seconds{instance="b\\"\\\\\\n",job="j",publisher="p"} 0\n'
    b"# TYPE pushgateway_build_info gauge\n"
    b'pushgateway_build_info{version="1"} 1\n'
)


@pytest.mark.parametrize("size", [1, 3, 100, 70_000, len(PAGE)])
def test_push_times_in_any_chunking(size: int) -> None:
    parser = PushTimeParser()
    for i in range(0, len(PAGE), size):
        parser.feed(PAGE[i : i + size])
    groups = {tuple(sorted(g.labels.items())): (g.pushed, g.failed) for g in parser.close()}
    assert groups == {
        (("instance", "a"), ("job", "j"), ("publisher", "p")): (1.7e9, 0.0),
        (("instance", 'b"\\\n'), ("job", "j"), ("publisher", "p")): (0.0, 1.5e9),
    }
    assert parser.unparsed == 1  # a name this reader does not know: never touched
    assert parser.complete


def test_listing_without_the_families_is_read_to_the_end() -> None:
    parser = PushTimeParser()
    parser.feed(b"# TYPE up gauge\nup 1\n")
    assert not parser.complete
    assert parser.close() == []
