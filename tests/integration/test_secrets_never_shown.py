"""A distinct secret in every place one can be configured; none appears in any output.

Real poller and receiver processes (debug logs on stderr and in a JSON
logfile) run against a real nats-server requiring each NATS auth method, a
real Pushgateway behind HTTPS and basic auth, and scrape targets behind basic
auth with the credentials in their URL. Then every output the project
produces is searched for every secret: the logs, `check-config`, the status
page and its JSON, `/metrics` of both roles and the management replies over
NATS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp import web
from authkit import SecurePushgateway, TestCA, new_nkey, operator_setup
from harness import group_samples, write_config
from servers import HOST, NatsServer, async_wait_for, free_port, http_request, serve_app

MANAGEMENT = "prometheus_streams.management"
PGW_OBSERVER = ("observer", "observer-pw")
PROGRAM = (sys.executable, "-m", "prometheus_streams")


def _secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(6)}"


def _private_file(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def _creds_secrets(path: Path) -> list[str]:
    """The user JWT and the nkey seed inside a creds file."""
    lines = path.read_text().splitlines()
    return [lines[i + 1] for i, line in enumerate(lines) if line.startswith("-----BEGIN")]


@dataclass
class NatsAuth:
    """A nats-server auth set-up: server config, each role's keys, the test's own client."""

    server_config: str
    poller: dict[str, Any]
    receiver: dict[str, Any]
    client: Callable[[str], dict[str, Any]]  # nats.connect() arguments for a server URL
    secrets: dict[str, str] = field(default_factory=dict)
    poller_url_userinfo: str = ""  # put into the poller's NATS URL
    receiver_url_userinfo: str = ""  # put into the receiver's NATS URL


def _users(tmp_path: Path) -> NatsAuth:
    password, url_password = _secret("nats-pw"), _secret("nats-url-pw")
    return NatsAuth(
        server_config=(
            "authorization { users: [\n"
            f'  {{ user: "poller", password: "{password}" }},\n'
            f'  {{ user: "receiver", password: "{url_password}" }},\n'
            '  { user: "observer", password: "observer-pw" }\n'
            "] }"
        ),
        poller={"user": "poller", "password_file": _private_file(tmp_path / "nats.pw", password)},
        receiver={},
        receiver_url_userinfo=f"receiver:{url_password}",
        client=lambda url: {"servers": url, "user": "observer", "password": "observer-pw"},
        secrets={"NATS password (file)": password, "NATS password in the URL": url_password},
    )


def _token(tmp_path: Path) -> NatsAuth:
    token = _secret("nats-token")
    return NatsAuth(
        server_config=f'authorization {{ token: "{token}" }}',
        poller={"token_file": _private_file(tmp_path / "nats.token", token)},
        receiver={},
        receiver_url_userinfo=token,
        client=lambda url: {"servers": url, "token": token},
        secrets={"NATS token": token},
    )


def _nkey(tmp_path: Path) -> NatsAuth:
    poller, receiver, observer = new_nkey("user"), new_nkey("user"), new_nkey("user")
    users = ", ".join(f'{{ nkey: "{k.public}" }}' for k in (poller, receiver, observer))
    observer_file = _private_file(tmp_path / "observer.nk", observer.seed)
    return NatsAuth(
        server_config=f"authorization {{ users: [ {users} ] }}",
        poller={"nkey_seed_file": _private_file(tmp_path / "poller.nk", poller.seed)},
        receiver={"nkey_seed_file": _private_file(tmp_path / "receiver.nk", receiver.seed)},
        client=lambda url: {"servers": url, "nkeys_seed": observer_file},
        secrets={"poller's nkey seed": poller.seed, "receiver's nkey seed": receiver.seed},
    )


def _creds(tmp_path: Path) -> NatsAuth:
    setup = operator_setup()
    poller = setup.user_creds(tmp_path / "poller.creds", "poller")
    receiver = setup.user_creds(tmp_path / "receiver.creds", "receiver")
    observer = setup.user_creds(tmp_path / "observer.creds", "observer")
    found = {f"poller's creds file ({i})": s for i, s in enumerate(_creds_secrets(poller))}
    found |= {f"receiver's creds file ({i})": s for i, s in enumerate(_creds_secrets(receiver))}
    return NatsAuth(
        server_config=setup.server_config(),
        poller={"credentials_file": str(poller)},
        receiver={"credentials_file": str(receiver)},
        client=lambda url: {"servers": url, "user_credentials": str(observer)},
        secrets=found,
    )


class AuthTargets:
    """Scrape targets on one port: /metrics wants basic auth, /moved redirects to ftp."""

    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.expected = f"Basic {token}"
        self.authorized = 0
        self.refused = 0
        self.moved_to = ""
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _metrics(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.expected:
            self.refused += 1
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="m"'})
        self.authorized += 1
        return web.Response(text="# TYPE guarded gauge\nguarded 1\n")

    async def _moved(self, _request: web.Request) -> web.Response:
        # A redirect that echoes credentials: aiohttp's error then quotes it whole.
        raise web.HTTPFound(self.moved_to)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/moved", self._moved)
        self._runner, self.port = await serve_app(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def auth_targets(user: str, password: str) -> AsyncIterator[AuthTargets]:
    targets = AuthTargets(user, password)
    await targets.start()
    try:
        yield targets
    finally:
        await targets.stop()


class Daemon:
    """A prometheus-streams process at debug level, stderr kept in a file."""

    def __init__(self, log_path: Path, config_path: Path, role: str) -> None:
        self.log_path = log_path
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [*PROGRAM, "--debug", "--config", str(config_path), role],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def stop(self) -> str:
        """SIGTERM, wait, and return everything it wrote."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.log_path.read_text(errors="replace")


def _check_config(path: Path) -> str:
    result = subprocess.run(
        [*PROGRAM, "--debug", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _get(port: int, path: str) -> str:
    status, body = http_request("GET", f"http://{HOST}:{port}{path}")
    assert status == 200, (path, status, body[:300])
    return body.decode("utf-8", errors="replace")


def _status(port: int) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = json.loads(_get(port, "/api/v1/status"))
    except (OSError, AssertionError):
        return None
    return document


async def _management_replies(connect: dict[str, Any]) -> str:
    """Every reply to status requests and to the NATS micro discovery subjects."""
    subjects = {
        f"{MANAGEMENT}.poller.dc1.status": 1,
        f"{MANAGEMENT}.receiver.central.status": 1,
        f"{MANAGEMENT}.all.status": 2,
        "$SRV.PING": 2,
        "$SRV.INFO": 2,
        "$SRV.STATS": 2,
    }
    nc = await nats.connect(**connect)
    replies: list[str] = []
    try:
        for subject, expected in subjects.items():
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish(subject, b"", reply=inbox)
            got: list[str] = []
            deadline = time.monotonic() + 10
            while len(got) < expected and time.monotonic() < deadline:
                try:
                    msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
                except nats.errors.TimeoutError:
                    break
                if msg.data:
                    got.append(msg.data.decode())
            await sub.unsubscribe()
            assert len(got) == expected, f"{subject}: {len(got)} replies of {expected}"
            replies += got
    finally:
        await nc.close()
    assert any('"buffered_scrapes"' in r for r in replies)  # the poller's status is in there
    return "\n".join(replies)


@pytest.mark.parametrize(
    ("nats_auth", "pushgateway_in_url"),
    [(_users, True), (_token, False), (_nkey, True), (_creds, False)],
    ids=["user-password", "token", "nkey-seed", "creds-file"],
)
async def test_no_secret_appears_in_any_output(
    tmp_path: Path, nats_auth: Callable[[Path], NatsAuth], pushgateway_in_url: bool
) -> None:
    auth = nats_auth(tmp_path)
    target_pw, moved_pw, dead_pw = _secret("tgt-pw"), _secret("moved-pw"), _secret("dead-pw")
    sd_pw = _secret("file-sd-pw")
    job_token, http_sd_pw = _secret("job-token"), _secret("http-sd-pw")
    pgw_url_pw, pgw_file_pw = _secret("pgw-url-pw"), _secret("pgw-file-pw")
    hidden = {
        "target URL password": target_pw,
        "password of a target that redirects": moved_pw,
        "password of a target that is down": dead_pw,
        "password in a file-SD target": sd_pw,
        "a job's authorization credentials": job_token,
        "an http_sd endpoint's basic_auth password": http_sd_pw,
        **auth.secrets,
    }
    if pushgateway_in_url:
        hidden["Pushgateway password in the URL"] = pgw_url_pw
    else:
        hidden["Pushgateway password (file)"] = pgw_file_pw

    ca = TestCA(tmp_path / "ca")
    pgw_users = dict([PGW_OBSERVER, ("urluser", pgw_url_pw), ("fileuser", pgw_file_pw)])
    gateway = SecurePushgateway(tmp_path / "pgw", ca, pgw_users)
    server = NatsServer(tmp_path / "nats", extra_config=auth.server_config)
    poller_port, receiver_port = free_port(), free_port()
    gateway.start()
    server.start()
    try:
        async with auth_targets("scraper", target_pw) as targets:
            targets.moved_to = f"ftp://scraper:{moved_pw}@{HOST}:{targets.port}/metrics"
            # As a host:port it would become the instance label, password and all.
            sd_file = tmp_path / "sd.json"
            sd_file.write_text(
                json.dumps([{"targets": [f"scraper:{sd_pw}@{HOST}:{targets.port}"]}])
            )

            def nats_url(userinfo: str) -> str:
                return f"nats://{userinfo}@{HOST}:{server.port}" if userinfo else server.url

            pgw_host = gateway.url.removeprefix("https://")
            push: dict[str, Any] = {"url": f"https://urluser:{pgw_url_pw}@{pgw_host}"}
            if not pushgateway_in_url:
                pw_file = _private_file(tmp_path / "pgw.pw", pgw_file_pw)
                push = {"url": gateway.url, "username": "fileuser", "password_file": pw_file}
            base = f"http://scraper:{{}}@{HOST}:{{}}"
            poller_cfg = write_config(
                tmp_path,
                {
                    "identity": "dc1",
                    "scrape_interval": "500ms",
                    "logfile": str(tmp_path / "poller.json"),
                    "monitor_port": poller_port,
                    "monitor_address": HOST,
                    "poller_stream": {"urls": nats_url(auth.poller_url_userinfo), **auth.poller},
                    "jobs": {
                        "node": {
                            "targets": [
                                {
                                    "name": "web-1",
                                    "url": base.format(target_pw, targets.port) + "/metrics",
                                },
                                {
                                    "name": "moved",
                                    "url": base.format(moved_pw, targets.port) + "/moved",
                                },
                                {
                                    "name": "dead",
                                    "url": base.format(dead_pw, free_port()) + "/metrics",
                                },
                            ]
                        },
                        "sd": {"file_sd_configs": [{"files": [str(sd_file)]}]},
                        # The job's own basic_auth, from a file (the target's password).
                        "keyed": {
                            "basic_auth": {
                                "username": "scraper",
                                "password_file": _private_file(tmp_path / "job.pw", target_pw),
                            },
                            "targets": [{"url": f"http://{HOST}:{targets.port}/metrics"}],
                        },
                        "tokened": {
                            "authorization": {"credentials": job_token},
                            "targets": [{"name": "t1", "url": f"http://{HOST}:{free_port()}/m"}],
                            "http_sd_configs": [
                                {
                                    "url": f"http://{HOST}:{free_port()}/sd",
                                    "refresh_interval": "500ms",
                                    "basic_auth": {"username": "sd", "password": http_sd_pw},
                                }
                            ],
                        },
                    },
                },
                "poller.yaml",
            )
            receiver_cfg = write_config(
                tmp_path,
                {
                    "identity": "central",
                    "logfile": str(tmp_path / "receiver.json"),
                    "monitor_port": receiver_port,
                    "monitor_address": HOST,
                    "receiver_stream": {
                        "urls": nats_url(auth.receiver_url_userinfo),
                        "client_id": "central",
                        **auth.receiver,
                    },
                    "push_gateway": {
                        **push,
                        "ca": str(ca.ca_file),
                        "publisher_label": True,
                        # The sweep lists the groups through the other HTTP client.
                        "stale_after": "1h",
                        "stale_check_interval": "1s",
                    },
                },
                "receiver.yaml",
            )
            outputs: dict[str, str] = {}
            for name, path in (("poller", poller_cfg), ("receiver", receiver_cfg)):
                outputs[f"check-config of the {name}"] = await asyncio.to_thread(
                    _check_config, path
                )
            poller = Daemon(tmp_path / "poller.err", poller_cfg, "poller")
            receiver = Daemon(tmp_path / "receiver.err", receiver_cfg, "receiver")
            try:
                await async_wait_for(
                    lambda: group_samples(gateway.metrics_text(), "node", "web-1").get(
                        'guarded{publisher="dc1"}'
                    ),
                    timeout=60,
                    message="the guarded target's page never reached the Pushgateway",
                )

                await async_wait_for(
                    lambda: group_samples(
                        gateway.metrics_text(), "keyed", f"{HOST}:{targets.port}"
                    ).get('guarded{publisher="dc1"}'),
                    timeout=60,
                    message="the job with its own basic_auth was not scraped",
                )

                def failed_targets() -> set[str]:
                    status = _status(poller_port) or {}
                    return {t["name"] for t in status.get("targets", []) if t["last_error"]}

                await async_wait_for(
                    lambda: {"moved", "dead", "t1"} <= failed_targets(),
                    timeout=60,
                    message="the redirecting and the dead target did not fail",
                )
                await async_wait_for(
                    lambda: any(
                        "job sd" in e["error"]
                        for e in (_status(poller_port) or {}).get("recent_errors", [])
                    ),
                    message="the file-SD target with user info was not reported",
                )
                await async_wait_for(
                    lambda: any(
                        "http_sd" in e["error"]
                        for e in (_status(poller_port) or {}).get("recent_errors", [])
                    ),
                    message="the failing http_sd endpoint was not reported",
                )
                await async_wait_for(
                    lambda: _status(receiver_port),
                    message="the receiver's status never answered",
                )
                for name, port in (("poller", poller_port), ("receiver", receiver_port)):
                    for page in ("/api/v1/status", "/", "/metrics"):
                        text = await asyncio.to_thread(_get, port, page)
                        outputs[f"{page} of the {name}"] = text
                outputs["management replies"] = await _management_replies(auth.client(server.url))
                # What the project pushed: the labels of every group and series.
                outputs["the Pushgateway's /metrics"] = gateway.metrics_text()
            finally:
                outputs["poller's stderr"] = poller.stop()
                outputs["receiver's stderr"] = receiver.stop()
    finally:
        server.stop()
        gateway.stop()
    outputs["poller's JSON log"] = (tmp_path / "poller.json").read_text()
    outputs["receiver's JSON log"] = (tmp_path / "receiver.json").read_text()

    shown = [
        f"{what} in {where}"
        for what, value in hidden.items()
        for where, text in outputs.items()
        if value in text
    ]
    assert not shown, "secrets shown:\n" + "\n".join(shown)
    # The credentials were used: the target saw them, the Pushgateway took pushes.
    assert targets.authorized >= 2 and targets.refused == 0
    assert "xxxxx" in outputs["check-config of the poller"]
    assert "DEBUG" in outputs["poller's stderr"]
    assert '"level": "debug"' in outputs["receiver's JSON log"]
    assert "NonHttpUrlRedirectClientError" in outputs["/api/v1/status of the poller"]
