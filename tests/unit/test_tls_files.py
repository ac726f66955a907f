"""TLS settings: file problems are found at start, naming the file, before any connection."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from harness import write_config
from testca import TestCA, key_pem

from prometheus_streams import config
from prometheus_streams.cli import main
from prometheus_streams.errors import ConfigError
from prometheus_streams.security import tls
from prometheus_streams.security.certs import fingerprint, normalize_fingerprint

NOW = datetime.datetime.now(datetime.UTC)


def _config(tmp_path: Path, tls_block: dict[str, Any], **top: Any) -> config.Config:
    data: dict[str, Any] = {
        "identity": "dc1",
        "poller_stream": {"urls": "nats://127.0.0.1:4222", "tls": tls_block},
        "jobs": {"node": {"targets": [{"url": "http://127.0.0.1:9100/metrics"}]}},
    }
    data.update(top)
    return config.load(write_config(tmp_path, data))


def _problems(cfg: config.Config) -> list[str]:
    assert cfg.poller_stream is not None and cfg.poller_stream.tls is not None
    return tls.check(cfg.poller_stream.tls, "poller_stream")


def _manual(ca: TestCA, name: str = "client") -> dict[str, str]:
    issued = ca.issue(name)
    return {
        "scheme": "manual",
        "ca": str(ca.ca_file),
        "cert": str(issued.cert_file),
        "key": str(issued.key_file),
    }


def test_good_manual_files_make_a_verifying_context(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    cfg = _config(tmp_path, _manual(ca))
    assert _problems(cfg) == []
    assert cfg.poller_stream is not None and cfg.poller_stream.tls is not None
    context = tls.client_context(cfg.poller_stream.tls, "poller_stream")
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_file_scheme_is_an_alias_of_manual(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    cfg = _config(tmp_path, {**_manual(ca), "scheme": "file"})
    assert cfg.poller_stream is not None and cfg.poller_stream.tls is not None
    assert cfg.poller_stream.tls.scheme == "manual"


def test_missing_cert_file_is_named(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    block = {**_manual(ca), "cert": str(tmp_path / "nope.pem")}
    problems = _problems(_config(tmp_path, block))
    assert len(problems) == 1
    assert "poller_stream.tls.cert" in problems[0]
    assert f"{tmp_path / 'nope.pem'}: no such file" in problems[0]


def test_unreadable_ca_file_is_named(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    # root reads any file whatever its mode: a directory is unreadable as a file for everyone
    (tmp_path / "dir.pem").mkdir()
    block = {**_manual(ca), "ca": str(tmp_path / "dir.pem")}
    problems = _problems(_config(tmp_path, block))
    assert problems == [
        f"poller_stream.tls.ca: CA certificate {tmp_path / 'dir.pem'}: is a directory, not a file"
    ]


def test_garbage_key_file_is_named(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    block = _manual(ca)
    Path(block["key"]).write_text("not a key\n")
    problems = _problems(_config(tmp_path, block))
    assert problems == [
        f"poller_stream.tls.key: private key {block['key']}: no usable PEM private key in it"
    ]


def test_key_not_matching_cert_is_named(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    block = {**_manual(ca), "key": str(ca.issue("other").key_file)}
    problems = _problems(_config(tmp_path, block))
    assert len(problems) == 1
    assert f"private key {block['key']} does not match certificate {block['cert']}" in problems[0]


def test_expired_cert_is_named(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    old = ca.issue(
        "old",
        not_before=NOW - datetime.timedelta(days=10),
        not_after=NOW - datetime.timedelta(days=1),
    )
    block = {**_manual(ca), "cert": str(old.cert_file), "key": str(old.key_file)}
    problems = _problems(_config(tmp_path, block))
    assert len(problems) == 1
    assert f"certificate {old.cert_file}: certificate for old expired on" in problems[0]


def test_not_yet_valid_cert_is_named(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    future = ca.issue(
        "future",
        not_before=NOW + datetime.timedelta(days=1),
        not_after=NOW + datetime.timedelta(days=5),
    )
    block = {**_manual(ca), "cert": str(future.cert_file), "key": str(future.key_file)}
    (problem,) = _problems(_config(tmp_path, block))
    assert "is not valid before" in problem and "check the clock" in problem


def test_encrypted_key_is_refused_with_a_reason(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    ca = TestCA(tmp_path / "ca")
    issued = ca.issue("encrypted")
    issued.key_file.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    block = {**_manual(ca), "cert": str(issued.cert_file), "key": str(issued.key_file)}
    (problem,) = _problems(_config(tmp_path, block))
    assert "the key is encrypted" in problem


def test_puppet_scheme_reads_the_ssldir_layout(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    ssl_dir = tmp_path / "ssl"
    (ssl_dir / "certs").mkdir(parents=True)
    (ssl_dir / "private_keys").mkdir()
    issued = ca.issue("web1.example.net")
    (ssl_dir / "certs" / "ca.pem").write_bytes(ca.ca_file.read_bytes())
    (ssl_dir / "certs" / "web1.example.net.pem").write_bytes(issued.cert_file.read_bytes())
    (ssl_dir / "private_keys" / "web1.example.net.pem").write_bytes(key_pem(issued.key))
    # The identity comes from the top level and is lower-cased as Puppet certnames are.
    cfg = _config(
        tmp_path, {"scheme": "puppet", "ssl_dir": str(ssl_dir)}, identity="WEB1.example.net"
    )
    assert cfg.poller_stream is not None and cfg.poller_stream.tls is not None
    assert cfg.poller_stream.tls.cert_file == str(ssl_dir / "certs" / "web1.example.net.pem")
    assert _problems(cfg) == []


def test_puppet_scheme_without_enrollment_says_how_to_enroll(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"scheme": "puppet", "ssl_dir": str(tmp_path / "ssl")})
    problems = _problems(cfg)
    assert len(problems) == 2
    assert all(
        f"enroll first: prometheus-streams enroll dc1 --dir {tmp_path / 'ssl'}" in p
        for p in problems
    )
    assert f"{tmp_path / 'ssl' / 'certs' / 'ca.pem'}: no such file" in problems[0]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"scheme": "puppet"}, "tls.ssl_dir: required with scheme: puppet"),
        ({"scheme": "manual", "ca": "a"}, "tls.cert: required with scheme: manual"),
        (
            {"scheme": "puppet", "ssl_dir": "/x", "cert": "c"},
            "tls.cert: not used with scheme: puppet",
        ),
        ({"scheme": "puppet", "ssl_dir": "/x", "identity": "../etc"}, "not a Puppet certificate"),
        ({"scheme": "manual", "ca": "a", "cert": "c", "key": "k", "ssl_dir": "/x"}, "ssl_dir"),
        ({"scheme": "choria"}, "tls.scheme: must be one of manual, file, puppet"),
    ],
)
def test_bad_tls_settings_are_config_errors(
    tmp_path: Path, block: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, block)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_top_level_tls_is_inherited_and_a_stream_tls_wins(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    top = _manual(ca, "top")
    own = _manual(ca, "own")
    data: dict[str, Any] = {
        "identity": "dc1",
        "tls": top,
        "poller_stream": {"urls": "nats://127.0.0.1:4222"},
        "receiver_stream": {"urls": "nats://127.0.0.1:4222", "tls": own},
        "push_gateway": {"url": "http://127.0.0.1:9091"},
        "jobs": {"node": {"targets": [{"url": "http://127.0.0.1:9100/metrics"}]}},
    }
    cfg = config.load(write_config(tmp_path, data))
    assert cfg.poller_stream is not None and cfg.poller_stream.tls is not None
    assert cfg.receiver_stream is not None and cfg.receiver_stream.tls is not None
    assert cfg.poller_stream.tls.cert == top["cert"]
    assert cfg.receiver_stream.tls.cert == own["cert"]


def test_cli_exits_2_naming_the_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = TestCA(tmp_path / "ca")
    block = {**_manual(ca), "key": str(tmp_path / "missing.key")}
    data: dict[str, Any] = {
        "identity": "dc1",
        "poller_stream": {"urls": "nats://127.0.0.1:4222", "tls": block},
        "jobs": {"node": {"targets": [{"url": "http://127.0.0.1:9100/metrics"}]}},
    }
    path = write_config(tmp_path, data)
    assert main(["--config", str(path), "poller"]) == 2
    err = capsys.readouterr().err
    assert (
        f"{path}: poller_stream.tls.key: private key {tmp_path / 'missing.key'}: no such file"
        in err
    )
    assert "Traceback" not in err


def test_check_config_shows_the_resolved_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data: dict[str, Any] = {
        "identity": "dc1",
        "tls": {"scheme": "puppet", "ssl_dir": "/etc/prometheus-streams/ssl"},
        "poller_stream": {"urls": "nats://127.0.0.1:4222"},
        "jobs": {"node": {"targets": [{"url": "http://127.0.0.1:9100/metrics"}]}},
    }
    path = write_config(tmp_path, data)
    main(["--config", str(path), "check-config"])
    out = capsys.readouterr().out
    assert "cert: /etc/prometheus-streams/ssl/certs/dc1.pem" in out
    assert "key: /etc/prometheus-streams/ssl/private_keys/dc1.pem" in out


def test_fingerprints_are_written_and_read_like_puppet(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    printed = fingerprint(ca.cert)
    assert len(printed) == 95 and printed == printed.upper()
    assert normalize_fingerprint(printed.replace(":", "").lower()) == printed
    assert normalize_fingerprint(f"SHA256 {printed}") == printed
    with pytest.raises(ValueError, match="64 hex digits"):
        normalize_fingerprint("AB:CD")
