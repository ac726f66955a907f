"""The poller's exposition check against the real Pushgateway: same verdict on every case."""

from __future__ import annotations

from exposition_cases import INVALID, VALID
from servers import Pushgateway, http_request

from prometheus_streams.exposition_check import exposition_error

# Where the two differ on purpose, and why.
PUSHGATEWAY_REFUSES_BUT_VALID = {
    "timestamp": "the receiver strips timestamps before the push",
    "same series twice": "the receiver's consistency check refuses it, then pushes up 0",
}
PUSHGATEWAY_TAKES_BUT_INVALID = {
    "invalid UTF-8 in HELP": "stored as it came, it makes every scrape of the Pushgateway fail",
    "gauge_histogram": "stored, it makes the Pushgateway serve a broken /metrics",
}


def _pushgateway_takes(pushgateway: Pushgateway, name: str, body: bytes) -> bool:
    # As the poller forwards a page: the health series follow after a newline.
    if not body.endswith(b"\n"):
        body += b"\n"
    url = f"{pushgateway.url}/metrics/job/check/instance/{name.replace(' ', '_')}"
    status, answer = http_request("PUT", url, body, {"Content-Type": "text/plain"})
    assert status in (200, 400), f"{name}: HTTP {status} {answer!r}"
    # One group at a time: types of one case must not clash with the next.
    http_request("DELETE", url)
    return status == 200


def test_the_check_and_the_pushgateway_agree(pushgateway: Pushgateway) -> None:
    verdicts = []
    for name, body in VALID.items():
        takes = _pushgateway_takes(pushgateway, name, body)
        assert exposition_error(body) is None, name
        if name not in PUSHGATEWAY_REFUSES_BUT_VALID:
            verdicts.append((name, takes, True))
        else:
            assert not takes, f"{name}: the Pushgateway takes it now"
    for name, (body, _, _) in INVALID.items():
        takes = _pushgateway_takes(pushgateway, name, body)
        assert exposition_error(body) is not None, name
        if name not in PUSHGATEWAY_TAKES_BUT_INVALID:
            verdicts.append((name, takes, False))
        else:
            assert takes, f"{name}: the Pushgateway refuses it now"
    assert [v for v in verdicts if v[1] != v[2]] == []
