"""Redaction of URL user info wherever text leaves the process: messages, logs, file SD."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from prometheus_streams.config import Job
from prometheus_streams.logs import JSONFormatter, RedactFilter
from prometheus_streams.poller.discovery import DiscoveryError, parse_target_groups
from prometheus_streams.secret import redact_text, userinfo_secrets

SECRET = "hunter2-very-secret"  # noqa: S105 - what must never be printed


def test_redact_text_hides_user_info_of_every_url_and_the_given_secrets() -> None:
    url = f"http://scraper:{SECRET}@10.0.0.1:9100/metrics"
    message = f"InvalidUrlClientError: URL({url!r}) via nats://{SECRET}@h:4222, mail a@b"
    shown = redact_text(message, userinfo_secrets(url))
    assert SECRET not in shown
    assert "URL('http://scraper:xxxxx@10.0.0.1:9100/metrics')" in shown
    assert "nats://xxxxx@h:4222, mail a@b" in shown
    # Decoded, as a library would show it after parsing the URL.
    assert redact_text("p@ss word", userinfo_secrets("http://u:p%40ss@h/")) == "xxxxx word"


def test_log_records_carry_no_url_user_info() -> None:
    record = logging.LogRecord(
        "aiohttp", logging.ERROR, __file__, 1, "GET %s failed", (f"https://u:{SECRET}@h/",), None
    )
    try:
        raise ValueError(f"bad http://u:{SECRET}@h/")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.__dict__["error"] = f"Cannot connect to http://u:{SECRET}@h/"  # as extra= sets it
    assert RedactFilter().filter(record)
    assert record.__dict__["error"] == "Cannot connect to http://u:xxxxx@h/"
    for text in (logging.Formatter().format(record), JSONFormatter().format(record)):
        assert SECRET not in text
        assert "https://u:xxxxx@h/" in text and "http://u:xxxxx@h/" in text


def test_file_sd_address_with_user_info_is_refused_without_showing_it() -> None:
    job = Job("node", (), scrape_interval=15, scrape_timeout=10, body_size_limit=1 << 20)
    text = json.dumps([{"targets": [f"scraper:{SECRET}@10.0.0.1:9100"]}])
    with pytest.raises(DiscoveryError) as info:
        parse_target_groups("/etc/sd/node.json", text, job)
    assert SECRET not in str(info.value)
    assert "'10.0.0.1:9100': user info (user:password@) is not allowed" in str(info.value)
