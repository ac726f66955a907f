"""Auth keys of the streams and the Pushgateway: validation, and secrets never shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from authkit import TestCA, new_nkey

from prometheus_streams import config
from prometheus_streams.check_config import describe
from prometheus_streams.errors import ConfigError
from prometheus_streams.receiver.pushgateway import auth_headers
from prometheus_streams.secret import Secret, redact_url
from prometheus_streams.transport import nats_auth_options

SECRET = "hunter2-very-secret"  # noqa: S105 - what must never be printed


def _load(tmp_path: Path, stream: dict[str, Any] | None = None, **push: Any) -> config.Config:
    data: dict[str, Any] = {"identity": "dc1"}
    if stream is not None:
        data["poller_stream"] = {"urls": "nats://127.0.0.1:4222", **stream}
    if push:
        data["push_gateway"] = push
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(data))
    return config.load(path)


def _problems(tmp_path: Path, stream: dict[str, Any] | None = None, **push: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, stream, **push)
    text = "\n".join(info.value.problems)
    assert SECRET not in text
    return text


def _secret_file(tmp_path: Path, text: str, name: str = "secret", mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def _printed(cfg: config.Config) -> str:
    return yaml.safe_dump(describe(cfg)) + repr(cfg) + str(cfg)


def test_password_file_is_read_and_never_printed(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, SECRET + "\n")
    cfg = _load(tmp_path, {"user": "poller", "password_file": path})
    assert cfg.poller_stream is not None and cfg.poller_stream.auth is not None
    assert nats_auth_options(cfg.poller_stream.auth) == {"user": "poller", "password": SECRET}
    printed = _printed(cfg)
    assert SECRET not in printed
    assert f"user poller with password from file {path}" in printed


def test_token_from_environment_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_TOKEN_FOR_TEST", SECRET)
    cfg = _load(tmp_path, {"token_env": "NATS_TOKEN_FOR_TEST"})
    assert cfg.poller_stream is not None
    assert nats_auth_options(cfg.poller_stream.auth) == {"token": SECRET}
    assert SECRET not in _printed(cfg)
    assert "token from environment variable NATS_TOKEN_FOR_TEST" in _printed(cfg)


def test_inline_password_is_never_printed(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"user": "poller", "password": SECRET})
    assert SECRET not in _printed(cfg)


def test_password_in_url_is_redacted_in_check_config(tmp_path: Path) -> None:
    data = {"receiver_stream": {"urls": f"nats://poller:{SECRET}@10.0.0.1:4222"}}
    path = tmp_path / "url.yaml"
    path.write_text(yaml.safe_dump(data))
    described = yaml.safe_dump(describe(config.load(path)))
    assert SECRET not in described
    assert "nats://poller:xxxxx@10.0.0.1:4222" in described


def test_bad_url_with_password_is_reported_redacted(tmp_path: Path) -> None:
    text = _problems(tmp_path, {"urls": f"http://poller:{SECRET}@10.0.0.1:4222"})
    assert "poller:xxxxx@" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://u:p@h:4222", "nats://u:xxxxx@h:4222"),
        ("nats://tokenvalue@h:4222", "nats://xxxxx@h:4222"),
        ("nats://h:4222", "nats://h:4222"),
        ("https://u:p@pgw.example:9091/x", "https://u:xxxxx@pgw.example:9091/x"),
        ("http://u:p@ss@h/x?a=b@c", "http://u:xxxxx@h/x?a=b@c"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_pushgateway_url_user_info_becomes_basic_auth(tmp_path: Path) -> None:
    cfg = _load(tmp_path, url=f"https://receiver:{SECRET.replace('-', '%2D')}@pgw.example:9091/")
    assert cfg.push_gateway is not None
    assert cfg.push_gateway.url == "https://pgw.example:9091"
    assert auth_headers(cfg.push_gateway) == auth_headers(
        config.PushGatewayConfig(
            url="https://pgw.example:9091", username="receiver", password=Secret("x", SECRET)
        )
    )
    printed = _printed(cfg) + "\n".join(cfg.warnings)
    assert SECRET not in printed and SECRET.replace("-", "%2D") not in printed
    assert "basic auth as receiver with password from user info of push_gateway.url" in printed
    assert any("prefer push_gateway.username with password_file" in w for w in cfg.warnings)


def test_pushgateway_credentials_given_twice_are_refused(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path, url=f"https://receiver:{SECRET}@pgw:9091", username="r", password=SECRET
    )
    assert "push_gateway.url: holds credentials, and so do other push_gateway keys" in problems


def test_secret_repr_names_its_source_only() -> None:
    secret = Secret("file /etc/x", SECRET)
    assert SECRET not in repr(secret) + str(secret) + f"{secret}"
    assert secret.reveal() == SECRET


def test_nkey_seed_file_is_checked_at_load(tmp_path: Path) -> None:
    user = new_nkey("user")
    good = _secret_file(tmp_path, user.seed + "\n", "user.nk")
    cfg = _load(tmp_path, {"nkey_seed_file": good})
    assert cfg.poller_stream is not None
    assert nats_auth_options(cfg.poller_stream.auth) == {"nkeys_seed": good}
    account = _secret_file(tmp_path, new_nkey("account").seed, "account.nk")
    assert "not a user seed" in _problems(tmp_path, {"nkey_seed_file": account})
    garbage = _secret_file(tmp_path, SECRET, "garbage.nk")
    text = _problems(tmp_path, {"nkey_seed_file": garbage})
    assert f"poller_stream.nkey_seed_file: {garbage} does not hold a valid nkey seed" in text


def test_credentials_file_must_hold_jwt_and_seed(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, SECRET + "\n", "user.creds")
    text = _problems(tmp_path, {"credentials_file": path})
    assert "poller_stream.credentials_file:" in text
    assert "no BEGIN NATS USER JWT block" in text


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        ({"password": SECRET}, "poller_stream.user: required with a password"),
        ({"user": "u"}, "poller_stream.password: required with user"),
        (
            {"user": "u", "password": SECRET, "password_env": "X"},
            "poller_stream.password_env: give only one of password, password_env",
        ),
        (
            {"user": "u", "password": SECRET, "token": SECRET},
            "poller_stream: choose one NATS auth method, got user/password and token",
        ),
        (
            {"password_file": "/nonexistent/pw", "user": "u"},
            "poller_stream.password_file: cannot read /nonexistent/pw",
        ),
        ({"token_env": "SURELY_UNSET_VARIABLE_42"}, "SURELY_UNSET_VARIABLE_42 is not set"),
        ({"token": 12}, "poller_stream.token: must be a non-empty string, got int"),
        ({"credentials": "x"}, "did you mean 'credentials_file'?"),
    ],
)
def test_auth_problems_name_the_key(tmp_path: Path, stream: dict[str, Any], problem: str) -> None:
    text = _problems(tmp_path, stream)
    assert problem in text
    assert text.startswith(str(tmp_path / "auth.yaml") + ": ")


def test_empty_and_multiline_secret_files_are_refused(tmp_path: Path) -> None:
    empty = _secret_file(tmp_path, "\n", "empty")
    assert f"{empty} is empty" in _problems(tmp_path, {"user": "u", "password_file": empty})
    two = _secret_file(tmp_path, f"{SECRET}\nsecond\n", "two")
    assert "holds more than one line" in _problems(tmp_path, {"token_file": two})


def test_world_readable_secret_file_warns(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, SECRET, mode=0o644)
    cfg = _load(tmp_path, {"token_file": path})
    assert any("readable by every user" in w for w in cfg.warnings)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_pushgateway_basic_auth_over_https_with_ca(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    path = _secret_file(tmp_path, SECRET)
    cfg = _load(
        tmp_path,
        url="https://pgw.example:9091",
        ca=str(ca.ca_file),
        username="receiver",
        password_file=path,
    )
    assert cfg.push_gateway is not None
    assert cfg.push_gateway.password is not None
    assert cfg.push_gateway.password.reveal() == SECRET
    printed = _printed(cfg)
    assert SECRET not in printed
    assert f"basic auth as receiver with password from file {path}" in printed
    assert not cfg.warnings


@pytest.mark.parametrize(
    ("push", "problem"),
    [
        (
            {"username": "r", "password": SECRET, "bearer_token": SECRET},
            "push_gateway: choose basic auth (username) or bearer_token, not both",
        ),
        ({"password": SECRET}, "push_gateway.username: required with a password"),
        ({"username": "r"}, "push_gateway.password: required with username"),
        ({"ca": "/nonexistent/ca.pem"}, "push_gateway.ca: cannot read /nonexistent/ca.pem"),
        (
            {"url": "http://pgw:9091", "insecure_skip_verify": True},
            "push_gateway.url: ca and insecure_skip_verify need an https:// url",
        ),
        ({"bearer_token_file": "/nonexistent/t"}, "push_gateway.bearer_token_file: cannot read"),
    ],
)
def test_pushgateway_auth_problems(tmp_path: Path, push: dict[str, Any], problem: str) -> None:
    push.setdefault("url", "https://pgw:9091")
    assert problem in _problems(tmp_path, **push)


def test_bearer_token_that_cannot_travel_in_a_header_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An environment variable can hold a line break inside (a file cannot).
    monkeypatch.setenv("PGW_TOKEN", "abc\r\nX-Injected: 1")
    push: dict[str, Any] = {"url": "https://pgw:9091", "bearer_token_env": "PGW_TOKEN"}
    problems = _problems(tmp_path, **push)
    assert "push_gateway.bearer_token: the token from environment variable PGW_TOKEN" in problems
    assert "X-Injected" not in problems
    push = {"url": "https://pgw:9091", "bearer_token": "t\u00f6ken"}
    assert "must be visible ASCII" in _problems(tmp_path, **push)


def test_pushgateway_ca_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    bad = _secret_file(tmp_path, "not a certificate\n", "ca.pem")
    assert "is not a PEM CA bundle" in _problems(tmp_path, url="https://pgw:9091", ca=bad)


def test_credentials_over_plain_http_warn(tmp_path: Path) -> None:
    cfg = _load(tmp_path, url="http://pgw:9091", bearer_token=SECRET)
    assert any("plain http" in w for w in cfg.warnings)
    assert not any(SECRET in w for w in cfg.warnings)


def test_insecure_skip_verify_warns(tmp_path: Path) -> None:
    cfg = _load(tmp_path, url="https://pgw:9091", insecure_skip_verify=True)
    assert any("insecure_skip_verify" in w for w in cfg.warnings)


def test_limits_have_defaults_and_accept_sizes(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text("max_line_length: 1KiB\nmax_label_count: 10\n")
    cfg = config.load(path)
    assert (cfg.max_line_length, cfg.max_label_count) == (1024, 10)
    path.write_text("{}\n")
    cfg = config.load(path)
    assert (cfg.max_line_length, cfg.max_label_count) == (64 * 1024, 128)
    path.write_text("max_label_count: 0\n")
    with pytest.raises(ConfigError, match="max_label_count: must be between 1 and 100000"):
        config.load(path)
