"""A job's HTTP keys and http_sd/dns_sd in `jobs:`: Prometheus' keys load onto `Job`,
mistakes are named by file and key, secrets are never quoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from prometheus_streams import config
from prometheus_streams.config.model import Authorization, BasicAuth
from prometheus_streams.errors import ConfigError
from prometheus_streams.poller.dns import SRVRecord, build_query, parse_answers
from prometheus_streams.poller.scraper import with_params

SECRET = "hunter2-job-secret"  # noqa: S105 - what must never be printed
URL = "http://127.0.0.1:9100/metrics"


def _load(tmp_path: Path, **job: Any) -> config.Config:
    data = {
        "identity": "dc1",
        "poller_stream": {"urls": "nats://127.0.0.1:4222"},
        "jobs": {"node": job},
    }
    path = tmp_path / "poller.yaml"
    path.write_text(yaml.safe_dump(data))
    return config.load(path)


def _problems(tmp_path: Path, **job: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, **job)
    text = "\n".join(caught.value.problems)
    assert SECRET not in text
    return text


def _secret_file(tmp_path: Path, mode: int = 0o600) -> str:
    path = tmp_path / "secret"
    path.write_text(f"{SECRET}\n")
    path.chmod(mode)
    return str(path)


def test_prometheus_keys_fill_the_job(tmp_path: Path) -> None:
    job = _load(
        tmp_path,
        targets=[{"url": URL}],
        params={"module": ["if_mib"], "n": [1, 2]},
        basic_auth={"username": "u", "password_file": _secret_file(tmp_path)},
        tls_config={"server_name": "node.example", "insecure_skip_verify": True},
        proxy_url="http://127.0.0.1:3128",
        follow_redirects=False,
        http_sd_configs=[{"url": "http://127.0.0.1:1/sd", "bearer_token": SECRET}],
        dns_sd_configs=[
            {"names": ["_node._tcp.example"]},
            {"names": ["web"], "type": "a", "port": 9100},
        ],
    ).jobs[0]
    assert job.params == (("module", ("if_mib",)), ("n", ("1", "2")))
    assert job.basic_auth is not None and job.basic_auth.username == "u"
    assert job.basic_auth.password is not None and job.basic_auth.password.reveal() == SECRET
    assert job.tls_config is not None and job.tls_config.server_name == "node.example"
    assert job.proxy_url == "http://127.0.0.1:3128" and job.follow_redirects is False
    sd = job.http_sd[0]
    assert sd.refresh_interval == 60.0 and isinstance(sd.authorization, Authorization)
    assert sd.authorization.type == "Bearer" and sd.authorization.credentials.reveal() == SECRET
    assert [(d.type, d.port, d.refresh_interval) for d in job.dns_sd] == [
        ("SRV", 0, 30.0),
        ("A", 9100, 30.0),
    ]
    assert SECRET not in repr(job)


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (
            {
                "basic_auth": {"username": "u", "password": SECRET},
                "targets": [{"url": f"http://u:{SECRET}@127.0.0.1:9100/metrics"}],
            },
            "jobs.node.targets[0].url: holds credentials while the job sets basic_auth",
        ),
        (
            {"basic_auth": {"username": "u", "password": SECRET}, "bearer_token": SECRET},
            "give one of basic_auth, authorization, bearer_token",
        ),
        ({"dns_sd_configs": [{"names": ["web"], "type": "A"}]}, "port: required for type A"),
        ({"dns_sd_configs": [{"names": ["web"], "type": "MX"}]}, "must be one of SRV, A, AAAA"),
        (
            {"dns_sd_configs": [{"names": ["x"], "nameserver": "a:b:c"}]},
            "nameserver: must be host:port",
        ),
        ({"http_sd_configs": [{"refresh_interval": "1m"}]}, "http_sd_configs[0].url: required"),
        (
            {"http_sd_configs": [{"url": f"http://u:{SECRET}@127.0.0.1/sd"}]},
            "http_sd_configs[0].url: holds credentials",
        ),
        ({"targets": [{"url": URL}], "params": {"module": "if_mib"}}, "params.module: must be"),
        (
            {"targets": [{"url": URL}], "proxy_url": "https://127.0.0.1:3128"},
            "proxy_url: must be an http:// proxy",
        ),
        ({"targets": [{"url": URL}], "oauth2": {}}, "jobs.node.oauth2: unknown key"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, job: dict[str, Any], expected: str) -> None:
    assert expected in _problems(tmp_path, **job)


def test_ignored_and_risky_keys_warn(tmp_path: Path) -> None:
    warnings = "\n".join(
        _load(
            tmp_path,
            targets=[{"url": URL}],
            enable_http2=True,
            authorization={"type": "Token", "credentials_file": _secret_file(tmp_path, 0o644)},
        ).warnings
    )
    assert "jobs.node.enable_http2: ignored" in warnings
    assert "credentials_file" in warnings and "readable by every user" in warnings
    assert SECRET not in warnings


def test_params_are_added_and_a_url_parameter_wins() -> None:
    params = (("module", ("if_mib",)), ("target", ("a", "b")))
    assert with_params(URL, params) == f"{URL}?module=if_mib&target=a&target=b"
    assert with_params(f"{URL}?module=mine", params) == f"{URL}?module=mine&target=a&target=b"
    assert with_params(URL, ()) == URL


def test_dns_answers_with_compressed_names_are_read() -> None:
    query = build_query("_m._tcp.svc.test", 33, 7)
    # The reply: the query echoed, one SRV answer whose owner points at the question.
    answer = (
        b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x00\x3c\x00\x11"
        + b"\x00\x01\x00\x05\x23\x8c"
        + b"\x04host\x04test\x00"
    )
    reply = bytearray(query + answer)
    reply[2:4] = b"\x81\x80"
    reply[6:8] = b"\x00\x01"
    assert parse_answers(bytes(reply), 7, 33) == [SRVRecord(1, 5, 9100, "host.test")]
    nxdomain = bytearray(query)
    nxdomain[2:4] = b"\x81\x83"
    assert parse_answers(bytes(nxdomain), 7, 33) == []
    assert BasicAuth("u").password is None
