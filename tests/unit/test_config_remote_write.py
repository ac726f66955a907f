"""remote_write and publisher_label: Prometheus' keys load, mistakes are named, secrets hidden."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from testca import TestCA

from prometheus_streams import cli, config
from prometheus_streams.check_config import describe
from prometheus_streams.errors import ConfigError

SECRET = "hunter2-very-secret"  # noqa: S105 - what must never be printed
ROOT = Path(__file__).parent.parent.parent
RECEIVER = {"identity": "dc1", "receiver_stream": {"urls": "nats://127.0.0.1:4222"}}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "rw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _load(tmp_path: Path, *entries: dict[str, Any], **top: Any) -> config.Config:
    return config.load(_write(tmp_path, {**RECEIVER, "remote_write": list(entries), **top}))


def _problems(tmp_path: Path, *entries: dict[str, Any], **top: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, *entries, **top)
    assert SECRET not in "\n".join(caught.value.problems)
    return caught.value.problems


def _secret_file(tmp_path: Path, name: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(f"{SECRET}\n")
    path.chmod(mode)
    return str(path)


def test_full_prometheus_entry_loads(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    client = ca.issue("receiver")
    password = _secret_file(tmp_path, "vm.pw")
    entry = {
        "url": "https://vm.example.net:8428/api/v1/write",
        "name": "vm",
        "headers": {"X-Scope-OrgID": "dc-metrics"},
        "basic_auth": {"username": "u", "password_file": password},
        "tls_config": {
            "ca_file": str(ca.ca_file),
            "cert_file": str(client.cert_file),
            "key_file": str(client.key_file),
            "server_name": "vm.internal",
            "insecure_skip_verify": False,
            "min_version": "TLS13",
        },
        "remote_timeout": "1m30s",
        "queue_config": {
            "max_samples_per_send": 500,
            "batch_send_deadline": "2s",
            "min_backoff": "100ms",
            "max_backoff": "10s",
        },
    }
    stream = {"urls": "nats://127.0.0.1:4222", "ack_wait": "2m"}
    cfg = _load(tmp_path, entry, publisher_label="datacenter", receiver_stream=stream)
    (rw,) = cfg.remote_write
    assert cfg.warnings == ()
    assert cfg.publisher_label == "datacenter"
    assert cfg.problems_for("receiver") == []
    assert (rw.url, rw.name, rw.headers) == (entry["url"], "vm", (("X-Scope-OrgID", "dc-metrics"),))
    assert (rw.ca, rw.cert_file, rw.key_file) == (
        str(ca.ca_file),
        str(client.cert_file),
        str(client.key_file),
    )
    assert (rw.tls_server_name, rw.min_version) == ("vm.internal", "TLS13")
    assert (rw.remote_timeout, rw.max_samples_per_send, rw.batch_send_deadline) == (90, 500, 2)
    assert (rw.min_backoff, rw.max_backoff) == (0.1, 10)
    basic = base64.b64encode(f"u:{SECRET}".encode()).decode()
    assert rw.request_headers() == {
        "X-Scope-OrgID": "dc-metrics",
        "Authorization": f"Basic {basic}",
    }
    context = rw.ssl_context()
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert rw.describe_auth() == (
        f"basic auth as u with password from file {password}, client certificate {client.cert_file}"
    )


def test_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"url": "http://vm.example.net:8428/api/v1/write"})
    (rw,) = cfg.remote_write
    assert rw.name == "vm_example_net_8428"
    assert (rw.remote_timeout, rw.max_samples_per_send, rw.batch_send_deadline) == (30, 2000, 5)
    assert (rw.min_backoff, rw.max_backoff) == (0.03, 5)
    assert rw.headers == () and rw.request_headers() == {}
    assert rw.ssl_context() is None and rw.tls_server_name is None
    assert rw.describe_auth() == "none"
    assert cfg.publisher_label == "publisher"
    assert cfg.push_gateway is None
    assert _load(tmp_path, {"url": "https://mimir/api/v1/push"}).remote_write[0].name == "mimir"


def test_bearer_forms_and_other_schemes(tmp_path: Path) -> None:
    token = _secret_file(tmp_path, "token")
    old = _load(tmp_path, {"url": "https://a/w", "bearer_token_file": token}).remote_write[0]
    new = _load(
        tmp_path, {"url": "https://a/w", "authorization": {"credentials_file": token}}
    ).remote_write[0]
    for rw in (old, new):
        assert rw.request_headers() == {"Authorization": f"Bearer {SECRET}"}
        assert rw.describe_auth() == f"bearer token from file {token}"
    custom = _load(
        tmp_path, {"url": "https://a/w", "authorization": {"type": "Token", "credentials": SECRET}}
    ).remote_write[0]
    assert custom.request_headers() == {"Authorization": f"Token {SECRET}"}
    assert custom.describe_auth() == "Token credentials from inline config"
    assert SECRET not in repr(custom) and SECRET not in str(describe(_load(tmp_path)))


def test_receiver_with_only_remote_write_is_fit(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"url": "http://127.0.0.1:8428/api/v1/write"})
    assert cfg.problems_for("receiver") == []
    assert describe(cfg)["outputs"] == [
        "remote_write 127_0_0_1_8428 → http://127.0.0.1:8428/api/v1/write (none)"
    ]


def test_receiver_without_output_is_not_fit(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, RECEIVER))
    problems = cfg.problems_for("receiver")
    assert problems == [
        f"{tmp_path / 'rw.yaml'}: push_gateway, remote_write: the receiver needs at least one "
        "output: a push_gateway section or a remote_write list"
    ]
    with pytest.raises(ConfigError):
        cfg.require("receiver")


def test_both_outputs_listed_by_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = _secret_file(tmp_path, "vm.pw")
    cfg = _load(
        tmp_path,
        {
            "url": "https://vm.example.net/api/v1/write",
            "name": "vm",
            "basic_auth": {"username": "u", "password_file": password},
            "headers": {"X-Api-Key": SECRET},
        },
        {"url": "https://mimir.example.net/api/v1/push", "authorization": {"credentials": SECRET}},
        push_gateway={"url": "http://pgw.example.net:9091"},
    )
    assert describe(cfg)["outputs"] == [
        "pushgateway http://pgw.example.net:9091 (none)",
        f"remote_write vm → https://vm.example.net/api/v1/write (basic auth as u with "
        f"password from file {password})",
        "remote_write mimir_example_net → https://mimir.example.net/api/v1/push "
        "(bearer token from inline config)",
    ]
    assert cli.check_config(cfg) == 0
    out = capsys.readouterr().out
    assert "fit_for:\n- receiver" in out
    assert SECRET not in out
    assert "X-Api-Key" in out


def test_sample_config_still_loads_and_fits_the_receiver() -> None:
    cfg = config.load(ROOT / "config.sample.yaml")
    assert cfg.problems_for("receiver") == []
    assert cfg.remote_write == ()
    assert describe(cfg)["outputs"] == ["pushgateway http://pushgateway.example.net:9091 (none)"]


def test_sample_remote_write_block_loads_when_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "config.sample.yaml").read_text()
    block = text.split("# remote_write:\n", 1)[1].split("\n# The label naming", 1)[0]
    entry = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))
    # The sample lists alternatives side by side; keep one of each.
    for key in ("username_file",):
        del entry[0]["basic_auth"][key]
    del entry[0]["authorization"]
    del entry[0]["tls_config"]
    assert _problems(tmp_path, *entry) == [
        f"{tmp_path / 'rw.yaml'}: remote_write[0].basic_auth.password_file: "
        "cannot read /etc/prometheus-streams/vm.pw: no such file"
    ]


def _one(tmp_path: Path, entry: dict[str, Any], **top: Any) -> str:
    problems = _problems(tmp_path, entry, **top)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize(
    ("entry", "key", "detail"),
    [
        ({"url": "htp:/x"}, "url", "not an http(s) URL: 'htp:/x'"),
        ({"name": "vm"}, "url", "required"),
        ({"url": "http://a:99999/w"}, "url", "bad port in URL"),
        ({"url": f"https://u:{SECRET}@a/w"}, "url", "holds credentials"),
        ({"url": "http://a/w", "name": "vm.prod"}, "name", "for example 'vm_prod'"),
        (
            {"url": "http://a/w", "headers": {"Bad Header": "x"}},
            "headers.Bad Header",
            "not an HTTP",
        ),
        (
            {"url": "http://a/w", "headers": {"Content-Type": "x"}},
            "headers.Content-Type",
            "reserved",
        ),
        (
            {"url": "http://a/w", "headers": {"authorization": "x"}},
            "headers.authorization",
            "use basic_auth or authorization",
        ),
        (
            {"url": "http://a/w", "headers": {"X-Prometheus-Remote-Write-Version": "2"}},
            "headers.X-Prometheus-Remote-Write-Version",
            "reserved",
        ),
        ({"url": "http://a/w", "headers": {"X-Key": f"a\n{SECRET}"}}, "headers.X-Key", "control"),
        ({"url": "http://a/w", "headers": ["X-Scope-OrgID"]}, "headers", "must be a mapping"),
        (
            {"url": "https://a/w", "authorization": {"type": "Basic", "credentials": SECRET}},
            "authorization.type",
            "use basic_auth",
        ),
        (
            {"url": "https://a/w", "authorization": {"type": "Bearer"}},
            "authorization.credentials",
            "required",
        ),
        (
            {"url": "https://a/w", "basic_auth": {"username": "u"}},
            "basic_auth.password",
            "required",
        ),
        (
            {"url": "https://a/w", "basic_auth": {"password": SECRET}},
            "basic_auth.username",
            "required",
        ),
        (
            {
                "url": "https://a/w",
                "basic_auth": {"username": "u", "password_file": "/nonexistent/pw"},
            },
            "basic_auth.password_file",
            "cannot read /nonexistent/pw: no such file",
        ),
        (
            {
                "url": "https://a/w",
                "basic_auth": {"username": "u", "password": SECRET, "password_file": "/x"},
            },
            "basic_auth.password_file",
            "give only one of password, password_file",
        ),
        (
            {"url": "https://a/w", "bearer_token": SECRET, "bearer_token_file": "/x"},
            "bearer_token_file",
            "give only one of",
        ),
        (
            {"url": "https://a/w", "authorization": {"credentials": "two words"}},
            "authorization.credentials",
            "visible ASCII",
        ),
        (
            {"url": "https://a/w", "tls_config": {"ca_file": "/nonexistent/ca"}},
            "tls_config.ca_file",
            "no such file",
        ),
        (
            {"url": "http://a/w", "tls_config": {"insecure_skip_verify": True}},
            "tls_config",
            "needs an https:// url",
        ),
        (
            {"url": "https://a/w", "tls_config": {"min_version": "TLS10"}},
            "tls_config.min_version",
            "must be one of",
        ),
        (
            {"url": "https://a/w", "tls_config": {"ca": "-----BEGIN"}},
            "tls_config.ca",
            "give ca_file",
        ),
        ({"url": "https://a/w", "remote_timeout": "soon"}, "remote_timeout", ""),
        (
            {"url": "https://a/w", "queue_config": {"max_samples_per_send": 0}},
            "queue_config.max_samples_per_send",
            "between 1",
        ),
        (
            {"url": "https://a/w", "queue_config": {"min_backoff": "10s"}},
            "queue_config.max_backoff",
            "below min_backoff",
        ),
        (
            {"url": "https://a/w", "write_relabel_configs": [{"action": "drop"}]},
            "write_relabel_configs",
            "ignoring it would send",
        ),
        ({"url": "https://a/w", "sigv4": {"region": "eu"}}, "sigv4", "not supported"),
        ({"url": "https://a/w", "oauth2": {"client_id": "x"}}, "oauth2", "not supported"),
        ({"url": "https://a/w", "azuread": {"cloud": "x"}}, "azuread", "not supported"),
        (
            {"url": "https://a/w", "protobuf_message": "io.prometheus.write.v2.Request"},
            "protobuf_message",
            "1.0",
        ),
        (
            {"url": "https://a/w", "remote_timeot": "5s"},
            "remote_timeot",
            "unknown key, did you mean 'remote_timeout'?",
        ),
        (
            {"url": "https://a/w", "queue_config": {"max_sample_per_send": 5}},
            "queue_config.max_sample_per_send",
            "unknown key",
        ),
        ({"url": "https://a/w", "basic_auth": {"user": "u"}}, "basic_auth.user", "unknown key"),
    ],
)
def test_each_error_names_file_and_key(
    tmp_path: Path, entry: dict[str, Any], key: str, detail: str
) -> None:
    problem = _one(tmp_path, entry) if key != "basic_auth.user" else _problems(tmp_path, entry)[0]
    prefix = f"{tmp_path / 'rw.yaml'}: remote_write[0].{key}: "
    assert problem.startswith(prefix), problem
    assert detail in problem


def test_two_auth_forms_are_refused(tmp_path: Path) -> None:
    entry = {
        "url": "https://a/w",
        "basic_auth": {"username": "u", "password": SECRET},
        "authorization": {"credentials": SECRET},
    }
    assert _one(tmp_path, entry) == (
        f"{tmp_path / 'rw.yaml'}: remote_write[0]: give one of basic_auth, authorization, "
        "bearer_token, not ['basic_auth', 'authorization']"
    )


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        {"url": "http://vm:8428/api/v1/write", "headers": {"X-Scope-OrgID": "a"}},
        {"url": "http://vm:8428/api/v1/write", "headers": {"X-Scope-OrgID": "b"}},
        {"url": "http://other/w", "name": "vm_8428"},
    )
    path = tmp_path / "rw.yaml"
    assert problems == [
        f"{path}: remote_write[1].name: 'vm_8428' is also the name of remote_write[0] "
        "(the default from the url's host): set `name`; names must be unique",
        f"{path}: remote_write[2].name: 'vm_8428' is also the name of remote_write[0]; "
        "names must be unique",
    ]


def test_remote_write_must_be_a_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(_write(tmp_path, {**RECEIVER, "remote_write": {"url": "http://a/w"}}))
    assert caught.value.problems == [
        f"{tmp_path / 'rw.yaml'}: remote_write: must be a list of destinations (- url: ...)"
    ]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (True, "true/false belongs under push_gateway.publisher_label"),
        ("dc-name", "not a valid label name"),
        ("job", "reserved"),
        ("__publisher", "reserved"),
    ],
)
def test_bad_publisher_label(tmp_path: Path, value: object, detail: str) -> None:
    problem = _one(tmp_path, {"url": "http://a/w"}, publisher_label=value)
    assert problem.startswith(f"{tmp_path / 'rw.yaml'}: publisher_label: "), problem
    assert detail in problem


def test_ignored_keys_are_warned_by_name(tmp_path: Path) -> None:
    entry = {
        "url": "https://a/w",
        "send_exemplars": True,
        "metadata_config": {"send": True},
        "proxy_url": "http://proxy:3128",
        "follow_redirects": True,
        "enable_http2": True,
        "send_native_histograms": False,
        "write_relabel_configs": [],
        "protobuf_message": "prometheus.WriteRequest",
        "queue_config": {
            "capacity": 10000,
            "max_shards": 50,
            "min_shards": 1,
            "retry_on_http_429": True,
            "sample_age_limit": "1h",
        },
    }
    cfg = _load(tmp_path, entry)
    path = tmp_path / "rw.yaml"
    warned = {w.split(": ", 2)[1] for w in cfg.warnings}
    assert warned == {
        "remote_write[0].send_exemplars",
        "remote_write[0].metadata_config",
        "remote_write[0].proxy_url",
        "remote_write[0].follow_redirects",
        "remote_write[0].enable_http2",
        "remote_write[0].send_native_histograms",
        "remote_write[0].queue_config.capacity",
        "remote_write[0].queue_config.max_shards",
        "remote_write[0].queue_config.min_shards",
        "remote_write[0].queue_config.retry_on_http_429",
        "remote_write[0].queue_config.sample_age_limit",
    }
    assert f"{path}: remote_write[0].send_exemplars: ignored: not supported" in cfg.warnings[0]
    assert len(cfg.remote_write) == 1


def test_other_warnings(tmp_path: Path) -> None:
    token = _secret_file(tmp_path, "token", mode=0o644)
    cfg = config.load(
        _write(
            tmp_path,
            {
                **RECEIVER,
                "receiver_stream": {"urls": "nats://127.0.0.1:4222", "ack_wait": "10s"},
                "remote_write": [
                    {"url": "http://a/w", "authorization": {"credentials_file": token}},
                    {"url": "https://b/w", "tls_config": {"insecure_skip_verify": True}},
                ],
            },
        )
    )
    text = "\n".join(cfg.warnings)
    assert (
        f"remote_write[0].authorization.credentials_file: {token} is readable by every user" in text
    )
    assert "remote_write[0].url: credentials would travel over plain http" in text
    assert "remote_write[1].tls_config.insecure_skip_verify: the server's certificate" in text
    assert "receiver_stream.ack_wait: 10s is shorter than remote_write a's remote_timeout" in text
    only_pgw = config.load(
        _write(
            tmp_path,
            {**RECEIVER, "push_gateway": {"url": "http://p:9091"}, "publisher_label": "dc"},
        )
    )
    assert any("publisher_label: used by remote_write only" in w for w in only_pgw.warnings)


def test_mismatched_client_certificate_is_refused(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    one, two = ca.issue("one"), ca.issue("two")
    entry = {
        "url": "https://a/w",
        "tls_config": {"cert_file": str(one.cert_file), "key_file": str(two.key_file)},
    }
    assert "cannot be used together" in _one(tmp_path, entry)
    alone = {"url": "https://a/w", "tls_config": {"cert_file": str(one.cert_file)}}
    assert "remote_write[0].tls_config.key_file: cert_file and key_file go together" in _one(
        tmp_path, alone
    )


async def test_ssl_context_and_server_name_pass_a_real_handshake(tmp_path: Path) -> None:
    """A server known only as vm.internal, asking for a client certificate, reached by IP."""
    ca = TestCA(tmp_path / "ca")
    server = ca.issue("vm", dns=("vm.internal",))
    client = ca.issue("receiver")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.ca_file))
    server_context.load_cert_chain(server.cert_file, server.key_file)
    server_context.verify_mode = ssl.CERT_REQUIRED
    peers: list[object] = []
    handshook = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peercert"))
        handshook.set()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = listener.sockets[0].getsockname()[1]
    tls = {
        "ca_file": str(ca.ca_file),
        "cert_file": str(client.cert_file),
        "key_file": str(client.key_file),
    }
    try:
        for server_name, works in (("vm.internal", True), (None, False)):
            entry: dict[str, Any] = {
                "url": f"https://127.0.0.1:{port}/api/v1/write",
                "tls_config": dict(tls),
            }
            if server_name:
                entry["tls_config"]["server_name"] = server_name
            rw = _load(tmp_path, entry).remote_write[0]
            connect = asyncio.open_connection(
                "127.0.0.1", port, ssl=rw.ssl_context(), server_hostname=rw.tls_server_name
            )
            if works:
                _, writer = await asyncio.wait_for(connect, 30)
                writer.close()
            else:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await asyncio.wait_for(connect, 30)
        await asyncio.wait_for(handshook.wait(), 30)
        assert peers[0]
    finally:
        listener.close()
        await listener.wait_closed()
