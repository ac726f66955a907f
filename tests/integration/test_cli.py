"""The command as an operator runs it: exit codes, signals, logs, monitor endpoints."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from harness import group_samples, write_config
from servers import (
    NatsServer,
    Pushgateway,
    Target,
    async_wait_for,
    free_port,
    http_request,
    wait_for,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prometheus_streams", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Daemon:
    """A prometheus-streams process whose stderr goes to a file we can poll."""

    def __init__(self, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prometheus_streams", *args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str) -> bool:
        return text in self.log()

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything logged."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no exit {timeout}s after SIGTERM:\n{self.log()}") from None
        return self.proc.returncode, self.log()


def answers_200(url: str) -> bool:
    return http_request("GET", url)[0] == 200


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test URL
        return json.loads(resp.read())


def test_version_prints_the_version() -> None:
    result = cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("prometheus-streams ")


def test_version_flag_prints_the_version() -> None:
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == cli("version").stdout
    assert result.stdout.startswith("prometheus-streams ")


def test_check_config_takes_its_config_after_the_command() -> None:
    sample = str(FIXTURES / "original-sample.yaml")
    result = cli("check-config", "--config", sample)
    assert result.returncode == 0, result.stderr
    assert "# poller: fit" in result.stdout and "# receiver: fit" in result.stdout
    # Before the command works as it did; after it wins when both are given.
    assert cli("--config", sample, "check-config").stdout == result.stdout
    assert cli("--config", "/nonexistent.yaml", "check-config", "--config", sample).returncode == 0
    assert cli("check-config", "--config", "/nonexistent.yaml").returncode == 2


def test_check_config_explains_what_management_brokers_now_mean() -> None:
    result = cli("check-config", "--config", str(FIXTURES / "original-sample.yaml"))
    assert result.returncode == 0, result.stderr
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("# management.brokers:")]
    assert "Choria brokers" in line and "separate management connection" in line
    assert "nats://choria1.example.net:4222" in line


def test_check_config_warns_loudly_about_a_shared_looking_identity(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"identity": "localhost", "jobs": {}})
    result = cli("check-config", "--config", str(path))
    assert f"{path}: identity: 'localhost' looks shared" in result.stderr
    assert "# WARNING: identity: 'localhost' looks shared" in result.stdout
    fine = cli("check-config", "--config", str(write_config(tmp_path, {"identity": "dc1-a"})))
    assert "identity" not in fine.stderr and "WARNING" not in fine.stdout


def test_help_explains_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("poller", "receiver", "check-config", "version", "--config", "--pid"):
        assert command in result.stdout
    receiver_help = cli("receiver", "--help")
    assert "Pushgateway" in receiver_help.stdout


def test_original_sample_config_passes_check_config() -> None:
    result = cli("--config", str(FIXTURES / "original-sample.yaml"), "check-config")
    assert result.returncode == 0, result.stderr
    assert "choria1: http://choria1.dc1.example.net:8222/choria/prometheus" in result.stdout
    assert "max_age_seconds: 80.0" in result.stdout
    assert "# poller: fit" in result.stdout and "# receiver: fit" in result.stdout
    assert "cluster_id: ignored" in result.stderr


def test_bad_config_lists_every_problem_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "scrape_intervall: 30s\n"
        "max_age: soon\n"
        "jobs:\n  node:\n    targets:\n      - url: htp:/x\n"
        "poller_stream:\n  urls: nats://127.0.0.1:4222\n  replicas: many\n",
        encoding="utf-8",
    )
    result = cli("--config", str(path), "poller")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    expected = [
        f"{path}: scrape_intervall: unknown key, did you mean 'scrape_interval'?",
        f"{path}: max_age: not a duration",
        f"{path}: jobs.node.targets[0].url: not an http(s) URL: 'htp:/x'",
        f"{path}: poller_stream.replicas: must be an integer",
    ]
    for line in expected:
        assert line in result.stderr, result.stderr


def test_missing_role_sections_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"identity": "x", "jobs": {}})
    result = cli("--config", str(path), "receiver")
    assert result.returncode == 2
    assert f"{path}: receiver_stream: required by the receiver" in result.stderr
    assert (
        f"{path}: push_gateway, remote_write: the receiver needs at least one output"
        in result.stderr
    )
    assert cli("--config", str(tmp_path / "nope.yaml"), "check-config").returncode == 2


async def test_poller_and_receiver_run_from_the_command_line_and_exit_0_on_sigterm(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    poller_port, receiver_port = free_port(), free_port()
    logfile = tmp_path / "poller.log.json"
    pid_file = tmp_path / "poller.pid"
    poller_cfg = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "scrape_interval": "500ms",
            "logfile": str(logfile),
            "monitor_port": poller_port,
            "monitor_address": "127.0.0.1",
            "poller_stream": {"urls": nats_server.url},
            "jobs": {"node": {"targets": [{"url": target.url}]}},
        },
        "poller.yaml",
    )
    receiver_cfg = write_config(
        tmp_path,
        {
            "identity": "central",
            "max_age": 60,
            "monitor_port": receiver_port,
            "monitor_address": "127.0.0.1",
            "receiver_stream": {"urls": nats_server.url, "client_id": "central"},
            "push_gateway": {"url": pushgateway.url, "publisher_label": True},
        },
        "receiver.yaml",
    )
    poller = Daemon(
        tmp_path / "poller.err", "--config", str(poller_cfg), "--pid", str(pid_file), "poller"
    )
    receiver = Daemon(tmp_path / "receiver.err", "--config", str(receiver_cfg), "receiver")
    try:
        instance = f"127.0.0.1:{target.port}"

        def up(job: str, inst: str) -> bool:
            pushed = group_samples(pushgateway.metrics_text(), job, inst)
            return pushed.get('up{publisher="dc1"}') == 1

        await async_wait_for(lambda: up("node", instance), message="scrape never arrived")
        # The poller scrapes itself, as the original did.
        await async_wait_for(
            lambda: up("prometheus_streams", "dc1"), message="own job never arrived"
        )
        assert pid_file.read_text().strip() == str(poller.pid)
        for port in (poller_port, receiver_port):
            base = f"http://127.0.0.1:{port}"
            assert http_request("GET", base + "/-/healthy")[0] == 200
            await async_wait_for(functools.partial(answers_200, base + "/-/ready"))
            status, body = http_request("GET", base + "/metrics")
            assert status == 200 and b"prometheus_streams_build_info" in body
            assert http_request("GET", base + "/")[0] == 200
        status_json = get_json(f"http://127.0.0.1:{poller_port}/api/v1/status")
        assert {t["name"] for t in status_json["targets"]} == {instance, "dc1"}
    finally:
        poller_rc, poller_err = poller.stop()
        receiver_rc, receiver_err = receiver.stop()
    assert poller_rc == 0, poller_err
    assert receiver_rc == 0, receiver_err
    assert "poller stopped cleanly" in poller_err
    assert not pid_file.exists()
    entries = [json.loads(line) for line in logfile.read_text().splitlines()]
    assert any("scraping 2 targets" in e["message"] for e in entries)
    assert all({"time", "level", "message"} <= e.keys() for e in entries)


def test_receiver_keeps_running_while_nats_is_absent_and_exits_0(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        {
            "identity": "central",
            "monitor_port": port,
            "monitor_address": "127.0.0.1",
            "receiver_stream": {"urls": f"nats://127.0.0.1:{free_port()}"},
            "push_gateway": {"url": f"http://127.0.0.1:{free_port()}"},
        },
    )
    receiver = Daemon(tmp_path / "receiver.err", "--config", str(cfg), "receiver")
    errors = 'prometheus_streams_nats_errors_total{connection="stream"} '

    def attempts() -> float:
        try:
            body = http_request("GET", f"http://127.0.0.1:{port}/metrics")[1].decode()
        except OSError:
            return 0
        line = next((x for x in body.splitlines() if x.startswith(errors)), errors + "0")
        return float(line.split()[-1])

    try:
        # The connection is refused over and over; the receiver keeps trying, and says
        # so once rather than once per attempt.
        wait_for(lambda: attempts() >= 3, timeout=60)
        assert receiver.proc.poll() is None
        # asyncio's loop says "Connect call failed", uvloop's "Connection refused".
        log = receiver.log()
        assert log.count("Connect call failed") + log.count("Connection refused") == 1
    finally:
        rc, err = receiver.stop()
    assert rc == 0, err
    assert "Traceback" not in err
    assert "receiver stopped cleanly" in err


def test_systemd_is_told_ready_reloading_and_stopping(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(notify_path)
        sock.settimeout(30)
        cfg = write_config(
            tmp_path,
            {
                "identity": "central",
                "receiver_stream": {"urls": nats_server.url},
                "push_gateway": {"url": f"http://127.0.0.1:{free_port()}"},
            },
        )
        env = {"NOTIFY_SOCKET": notify_path}
        receiver = Daemon(tmp_path / "r.err", "--config", str(cfg), "receiver", env=env)
        try:
            assert sock.recv(256) == b"READY=1"
            receiver.proc.send_signal(signal.SIGHUP)
            assert sock.recv(256) == b"RELOADING=1"
            assert sock.recv(256) == b"READY=1"
        finally:
            rc, err = receiver.stop()
        assert sock.recv(256) == b"STOPPING=1"
    assert "configuration reloaded" in err
    assert rc == 0, err


async def test_debug_key_and_flag_turn_on_debug_logs(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    cfg = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "debug": True,
            "scrape_interval": "300ms",
            "poller_stream": {"urls": nats_server.url},
            "jobs": {"node": {"targets": [{"name": "web-1", "url": target.url}]}},
        },
    )
    poller = Daemon(tmp_path / "debug.err", "--config", str(cfg), "poller")
    try:
        await async_wait_for(
            lambda: poller.logged("DEBUG prometheus_streams.poller.app: published node/web-1")
        )
    finally:
        rc, _ = poller.stop()
    assert rc == 0
    quiet_cfg = write_config(
        tmp_path, {**yaml.safe_load(cfg.read_text()), "debug": False}, "quiet.yaml"
    )
    quiet = Daemon(tmp_path / "quiet.err", "--config", str(quiet_cfg), "poller")
    loud = Daemon(tmp_path / "loud.err", "--debug", "--config", str(quiet_cfg), "poller")
    try:
        await async_wait_for(lambda: loud.logged("DEBUG prometheus_streams.poller.app: published"))
        await async_wait_for(lambda: quiet.logged("scraping 1 targets"))
    finally:
        quiet.stop()
        loud.stop()
    assert "DEBUG" not in quiet.log()


def test_check_config_reports_missing_certificate_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    path = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "tls": {
                "scheme": "manual",
                "ca": str(missing / "ca.pem"),
                "cert": str(missing / "cert.pem"),
                "key": str(missing / "key.pem"),
            },
            "poller_stream": {"urls": "nats://127.0.0.1:4222"},
            "jobs": {"node": {"targets": [{"url": "http://127.0.0.1:9100/metrics"}]}},
        },
    )
    result = cli("--config", str(path), "check-config")
    assert result.returncode == 2
    assert "# poller: not fit:" in result.stdout
    assert str(missing / "ca.pem") in result.stdout
    assert "fit_for: []" in result.stdout
