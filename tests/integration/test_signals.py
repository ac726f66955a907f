"""Signals as systemd and operators send them: forced exit, reload and readiness."""

from __future__ import annotations

import functools
import signal
import socket
from pathlib import Path

import pytest
from harness import write_config
from servers import NatsServer, free_port, http_request, wait_for
from test_cli import Daemon


def _ready(port: int) -> bool:
    return http_request("GET", f"http://127.0.0.1:{port}/-/ready")[0] == 200


def _not_ready(port: int) -> bool:
    return http_request("GET", f"http://127.0.0.1:{port}/-/ready")[0] == 503


def test_a_second_sigterm_exits_at_once_and_removes_the_pid_file(tmp_path: Path) -> None:
    # NATS is absent: the first SIGTERM leaves the poller waiting, for its grace, to
    # publish the scrapes it holds.
    cfg = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "scrape_interval": "300ms",
            "shutdown_grace": "60s",
            "poller_stream": {"urls": f"nats://127.0.0.1:{free_port()}"},
            "jobs": {"node": {"targets": [{"url": f"http://127.0.0.1:{free_port()}/metrics"}]}},
        },
    )
    pid_file = tmp_path / "poller.pid"
    poller = Daemon(tmp_path / "p.err", "--config", str(cfg), "--pid", str(pid_file), "poller")
    try:
        wait_for(pid_file.exists, message="no pid file")
        wait_for(lambda: poller.logged("scrape of node/"))
        poller.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: poller.logged("buffered scrapes before exit"))
        poller.proc.send_signal(signal.SIGTERM)
        rc = poller.proc.wait(timeout=30)
    finally:
        poller.stop()
    assert rc == 1, poller.log()
    assert "SIGTERM again: exiting without waiting" in poller.log()
    assert not pid_file.exists()


@pytest.fixture
def notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(60)
    return sock


def test_after_sighup_ready_is_reported_only_once_the_role_is_ready(
    tmp_path: Path, nats_server: NatsServer, notify_socket: socket.socket
) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        {
            "identity": "central",
            "monitor_port": port,
            "monitor_address": "127.0.0.1",
            "receiver_stream": {"urls": nats_server.url},
            "push_gateway": {"url": f"http://127.0.0.1:{free_port()}"},
        },
    )
    env = {"NOTIFY_SOCKET": notify_socket.getsockname()}
    receiver = Daemon(tmp_path / "r.err", "--config", str(cfg), "receiver", env=env)
    with notify_socket:
        try:
            assert notify_socket.recv(256) == b"READY=1"
            nats_server.stop()
            wait_for(functools.partial(_not_ready, port), message="still ready without NATS")
            receiver.proc.send_signal(signal.SIGHUP)
            assert notify_socket.recv(256) == b"RELOADING=1"
            wait_for(lambda: receiver.logged("configuration reloaded"))
            # Nothing more while NATS is away: the role is not ready.
            notify_socket.settimeout(3)
            with pytest.raises(TimeoutError):
                notify_socket.recv(256)
            assert _not_ready(port)
            nats_server.start()
            notify_socket.settimeout(60)
            assert notify_socket.recv(256) == b"READY=1"
            # Told ready only when it is.
            assert _ready(port)
        finally:
            rc, err = receiver.stop()
        assert notify_socket.recv(256) == b"STOPPING=1"
    assert rc == 0, err
