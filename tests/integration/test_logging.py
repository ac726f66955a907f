"""What the logs look like to journald and to log shippers, from the real command."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from harness import TOPIC, publish_raw, write_config
from servers import NatsServer, Target, async_wait_for, free_port
from test_cli import Daemon, cli

from prometheus_streams import wire
from prometheus_streams.logs import syslog_priority

PRIORITY = re.compile(r"^<([0-7])>")


def _journal_stream(path: Path) -> str:
    """What systemd would put in JOURNAL_STREAM for a process whose stderr is `path`."""
    path.touch()
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _json_lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # every line, not only some, must be JSON
        assert isinstance(entry, dict)
        entries.append(entry)
    return entries


def test_syslog_priorities_follow_the_levels() -> None:
    assert [
        syslog_priority(level)
        for level in (
            logging.CRITICAL,
            logging.ERROR,
            logging.WARNING,
            logging.INFO,
            logging.DEBUG,
        )
    ] == [2, 3, 4, 6, 7]


async def test_under_journald_every_stderr_line_carries_its_priority(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    cfg = write_config(
        tmp_path,
        {
            "identity": "localhost",
            "scrape_interval": "300ms",
            "poller_stream": {"urls": nats_server.url},
            "jobs": {"node": {"targets": [{"name": "web-1", "url": target.url}]}},
        },
    )
    err = tmp_path / "poller.err"
    env = {"JOURNAL_STREAM": _journal_stream(err)}
    poller = Daemon(err, "--debug", "--config", str(cfg), "poller", env=env)
    try:
        await async_wait_for(lambda: poller.logged("published node/web-1"))
        await async_wait_for(lambda: poller.logged("scraping 1 targets"))
    finally:
        rc, text = poller.stop()
    assert rc == 0, text
    lines = text.splitlines()
    assert lines and all(PRIORITY.match(line) for line in lines), text
    # The poller warns, at warning priority, about an identity other hosts share.
    assert any(
        line.startswith("<4>") and "identity: 'localhost' looks shared" in line for line in lines
    ), text
    assert any(line.startswith("<6>") and "scraping 1 targets" in line for line in lines)
    assert any(line.startswith("<7>") and "published node/web-1" in line for line in lines)


def test_without_the_journal_stderr_has_no_priority_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, {"identity": "localhost"})
    # Inherited from a parent whose stream was the journal, but ours is a pipe now.
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    result = cli("check-config", "--config", str(path))
    assert "looks shared" in result.stderr
    assert not any(PRIORITY.match(line) for line in result.stderr.splitlines())


async def test_json_lines_on_stderr_carry_job_target_and_error(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    cfg = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "log_format": "json",
            "scrape_interval": "300ms",
            "poller_stream": {"urls": nats_server.url},
            "jobs": {"node": {"targets": [{"name": "web-1", "url": dead}]}},
        },
    )
    poller = Daemon(tmp_path / "poller.err", "--config", str(cfg), "poller")
    try:
        await async_wait_for(lambda: poller.logged("scrape of node/web-1"))
    finally:
        rc, text = poller.stop()
    assert rc == 0, text
    entries = _json_lines(text)
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    (failed,) = [e for e in entries if e["message"].startswith("scrape of node/web-1")]
    assert failed["level"] == "warning"
    assert failed["logger"] == "prometheus_streams.poller.app"
    assert failed["job"] == "node" and failed["target"] == "web-1"
    assert failed["error"]
    # The flag does the same for a config without the key, and under journald keeps JSON
    # whole after the priority.
    plain = write_config(tmp_path, {"identity": "dc1"}, "plain.yaml")
    err = tmp_path / "check.err"
    env = {"JOURNAL_STREAM": _journal_stream(err)}
    checker = Daemon(err, "check-config", "--log-format", "json", "--config", str(plain), env=env)
    assert checker.proc.wait(timeout=30) in (0, 2)
    for line in checker.log().splitlines():
        assert PRIORITY.match(line), line
        json.loads(PRIORITY.sub("", line))


async def test_receiver_json_lines_name_what_it_discards(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    cfg = write_config(
        tmp_path,
        {
            "identity": "central",
            "receiver_stream": {"urls": nats_server.url},
            "push_gateway": {"url": f"http://127.0.0.1:{free_port()}"},
        },
    )
    receiver = Daemon(tmp_path / "r.err", "--log-format", "json", "--config", str(cfg), "receiver")
    try:
        await async_wait_for(lambda: receiver.logged("consuming"))
        scrape = wire.Scrape("dc1", "node", "web-1", 1, b"up 1\n")
        subject, payload, headers = wire.encode(TOPIC, scrape)
        headers = {**headers, wire.H_CONTENT_ENCODING: "brotli"}
        await publish_raw(nats_server.url, subject, payload, headers)
        await async_wait_for(lambda: receiver.logged("discarding message"))
    finally:
        rc, text = receiver.stop()
    assert rc == 0, text
    (discarded,) = [e for e in _json_lines(text) if "discarding" in e["message"]]
    assert discarded["level"] == "error"
    assert discarded["reason"] == "bad_header"
    assert discarded["subject"] == subject
    assert "brotli" in discarded["error"]
