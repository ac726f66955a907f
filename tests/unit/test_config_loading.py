"""Loading and validating the YAML configuration."""

from __future__ import annotations

import dataclasses
import socket
import textwrap
from pathlib import Path

import pytest

from prometheus_streams.check_config import describe
from prometheus_streams.config import Config, TLSConfig, default_instance_name, load
from prometheus_streams.errors import ConfigError

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "original-sample.yaml"

MANUAL_TLS = """\
tls:
  scheme: manual
  ca: /etc/ps/ca.pem
  cert: /etc/ps/cert.pem
  key: /etc/ps/key.pem
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str) -> Config:
    return load(_write(tmp_path, text))


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# -- the original project's sample ------------------------------------------------


def test_original_sample_loads() -> None:
    config = load(SAMPLE)
    assert config.identity == "USDC1"
    assert config.max_age == 80.0
    assert config.scrape_interval == 60.0
    assert config.monitor_port == 10000
    assert config.verbose is True
    assert config.debug is False
    assert config.logfile == "/var/log/prometheus-streams.log"


def test_original_sample_has_three_choria_targets() -> None:
    config = load(SAMPLE)
    (job,) = config.jobs
    assert job.name == "choria"
    assert [t.name for t in job.targets] == ["choria1", "choria2", "choria3"]
    assert job.targets[0].url == "http://choria1.dc1.example.net:8222/choria/prometheus"


def test_original_sample_push_gateway_adds_publisher_label() -> None:
    config = load(SAMPLE)
    assert config.push_gateway is not None
    assert config.push_gateway.url == "http://prometheus.dc2.example.net:9091"
    assert config.push_gateway.publisher_label is True


def test_original_sample_durable_defaults_to_client_id() -> None:
    config = load(SAMPLE)
    assert config.receiver_stream is not None
    assert config.receiver_stream.client_id == "prometheus_receiver"
    assert config.receiver_stream.durable == "prometheus_receiver"
    assert config.receiver_stream.urls == ("nats://nats.dc2.example.net:4222",)
    assert config.receiver_stream.stream == "PROMETHEUS"
    assert config.receiver_stream.subjects == "prometheus.>"


def test_original_sample_warns_about_obsolete_sections() -> None:
    config = load(SAMPLE)
    assert any("poller_stream.cluster_id" in w for w in config.warnings)
    assert any("receiver_stream.cluster_id" in w for w in config.warnings)
    # brokers are a supported key now (check-config explains them), not an ignored one
    assert not any(w.startswith(f"{SAMPLE}: management.brokers") for w in config.warnings)
    assert any(w.startswith(f"{SAMPLE}: management.loglevel: ignored") for w in config.warnings)


def test_original_sample_is_fit_for_both_roles() -> None:
    config = load(SAMPLE)
    assert config.problems_for("poller") == []
    assert config.problems_for("receiver") == []
    assert describe(config)["fit_for"] == ["poller", "receiver"]


def test_config_is_frozen() -> None:
    config = load(SAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.identity = "other"  # type: ignore[misc]
    assert config.push_gateway is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.push_gateway.url = "http://elsewhere"  # type: ignore[misc]


# -- targets and jobs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://h/x", "h:80"),
        ("https://h/x", "h:443"),
        ("http://h:9100/metrics", "h:9100"),
        ("https://h:8443", "h:8443"),
        ("http://[::1]:9100/metrics", "[::1]:9100"),
    ],
)
def test_default_instance_name_is_host_and_port(url: str, name: str) -> None:
    assert default_instance_name(url) == name


def test_target_without_name_is_named_host_port(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        jobs:
          node:
            targets:
              - url: http://h/x
              - url: https://h/x
              - url: http://other:9100/metrics
        """,
    )
    assert [t.name for t in config.jobs[0].targets] == ["h:80", "h:443", "other:9100"]


def test_jobs_inherit_top_level_schedule(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        scrape_interval: 30s
        scrape_timeout: 5s
        body_size_limit: 1MiB
        jobs:
          a:
            targets: [{url: "http://a/"}]
          b:
            scrape_interval: 1m30s
            scrape_timeout: 500ms
            body_size_limit: 10KB
            targets: [{url: "http://b/"}]
        """,
    )
    a, b = config.jobs
    assert (a.scrape_interval, a.scrape_timeout, a.body_size_limit) == (30.0, 5.0, 1024**2)
    # A job's body_size_limit reads as Prometheus reads it: KB is 1024 bytes.
    assert (b.scrape_interval, b.scrape_timeout, b.body_size_limit) == (90.0, 0.5, 10 * 1024)


def test_job_timeout_is_capped_by_a_shorter_job_interval(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        scrape_timeout: 10s
        jobs:
          fast:
            scrape_interval: 5s
            targets: [{url: "http://a/"}]
        """,
    )
    assert config.jobs[0].scrape_timeout == 5.0


def test_scrape_timeout_above_interval_is_an_error_per_job(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
        jobs:
          a:
            scrape_interval: 10s
            scrape_timeout: 20s
            targets: [{url: "http://a/"}]
          b:
            scrape_interval: 1m
            scrape_timeout: 2m
            targets: [{url: "http://b/"}]
          ok:
            scrape_interval: 1m
            scrape_timeout: 1m
            targets: [{url: "http://c/"}]
        """,
    )
    path = tmp_path / "config.yaml"
    assert problems == [
        f"{path}: jobs.a.scrape_timeout: 20s is longer than the scrape_interval 10s",
        f"{path}: jobs.b.scrape_timeout: 120s is longer than the scrape_interval 60s",
    ]


def test_duplicate_target_names_are_an_error(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
        jobs:
          node:
            targets:
              - url: http://h:9100/
              - url: https://h:9100/other
        """,
    )
    assert problems == [
        f"{tmp_path / 'config.yaml'}: jobs.node.targets[1].name: "
        "duplicate target name 'h:9100' in job node"
    ]


def test_job_without_targets_is_an_error(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "jobs:\n  node:\n    targets: []\n")
    assert problems == [
        f"{tmp_path / 'config.yaml'}: jobs.node.targets: "
        "must be a non-empty list of {name, url} "
        "(or use file_sd_configs, http_sd_configs or dns_sd_configs)"
    ]


def test_self_job_name_is_reserved_with_monitor_port(tmp_path: Path) -> None:
    text = """\
        monitor_port: 9999
        jobs:
          prometheus_streams:
            targets: [{url: "http://a/"}]
        """
    assert _problems(tmp_path, text) == [
        f"{tmp_path / 'config.yaml'}: jobs.prometheus_streams: "
        "reserved for the poller's own metrics (monitor_port)"
    ]


# -- scalar values -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("0s", 0.0), ("2m", 120.0)])
def test_max_age_accepts_zero_and_durations(tmp_path: Path, text: str, seconds: float) -> None:
    assert _load(tmp_path, f"identity: x\nmax_age: {text}\n").max_age == seconds


def test_missing_identity_defaults_to_the_os_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on many hosts: the FQDN lookup answers localhost, the host name is the real one.
    monkeypatch.setattr(socket, "getfqdn", lambda *_: "localhost")
    monkeypatch.setattr(socket, "gethostname", lambda: "web-7")
    config = _load(tmp_path, "scrape_interval: 30s\n")
    assert config.identity == "web-7"
    assert not any(": identity:" in w for w in config.warnings)


@pytest.mark.parametrize(
    "name",
    ["localhost", "LOCALHOST.localdomain", "localhost6", "127.0.0.1", "127.0.1.1", "::1", ""],
)
def test_a_shared_looking_identity_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: name)
    config = _load(tmp_path, "scrape_interval: 30s\n")
    (warning,) = [w for w in config.warnings if ": identity:" in w]
    assert "looks shared" in warning
    assert "overwrite each other's groups" in warning


def test_an_explicit_localhost_identity_is_warned_about(tmp_path: Path) -> None:
    config = _load(tmp_path, "identity: localhost\n")
    assert any(w.startswith(f"{tmp_path / 'config.yaml'}: identity:") for w in config.warnings)
    assert not any(": identity:" in w for w in _load(tmp_path, "identity: dc1-poller\n").warnings)


def test_missing_identity_is_the_host_name_of_this_machine(tmp_path: Path) -> None:
    config = _load(tmp_path, "verbose: false\n")
    assert config.identity == socket.gethostname()


def test_numeric_identity_becomes_a_string(tmp_path: Path) -> None:
    assert _load(tmp_path, "identity: 42\n").identity == "42"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.jobs == ()
    assert config.scrape_interval == 60.0
    assert config.scrape_timeout == 10.0
    assert config.body_size_limit == 32 * 1024 * 1024
    assert config.poller_stream is None


def test_unknown_key_suggests_the_close_match(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    assert _problems(tmp_path, "identity: x\nscrape_intervall: 30s\n") == [
        f"{path}: scrape_intervall: unknown key, did you mean 'scrape_interval'?"
    ]


def test_unknown_nested_key_names_its_full_path(tmp_path: Path) -> None:
    text = """\
        push_gateway:
          url: http://gw:9091
          publisher_lable: true
        """
    assert _problems(tmp_path, text) == [
        f"{tmp_path / 'config.yaml'}: push_gateway.publisher_lable: "
        "unknown key, did you mean 'publisher_label'?"
    ]


def test_unknown_key_without_close_match_has_no_hint(tmp_path: Path) -> None:
    assert _problems(tmp_path, "zzzzzz: 1\n") == [
        f"{tmp_path / 'config.yaml'}: zzzzzz: unknown key"
    ]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
        identiti: x
        verbose: "yes"
        monitor_port: 70000
        jobs:
          node:
            scrape_intervl: 1m
            targets:
              - url: ftp://h/
                nmae: h
        push_gateway:
          url: http://gw:9091
          concurency: 3
        """,
    )
    path = tmp_path / "config.yaml"
    assert sorted(problems) == sorted(
        [
            f"{path}: identiti: unknown key, did you mean 'identity'?",
            f"{path}: verbose: must be true or false, got 'yes'",
            f"{path}: monitor_port: must be between 0 and 65535, got 70000",
            f"{path}: jobs.node.scrape_intervl: unknown key, did you mean 'scrape_interval'?",
            f"{path}: jobs.node.targets[0].nmae: unknown key, did you mean 'name'?",
            f"{path}: jobs.node.targets[0].url: not an http(s) URL: 'ftp://h/'",
            f"{path}: push_gateway.concurency: unknown key, did you mean 'concurrency'?",
        ]
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("verbose: 1\n", "verbose: must be true or false, got 1"),
        ("monitor_port: abc\n", "monitor_port: must be an integer, got 'abc'"),
        ("monitor_port: true\n", "monitor_port: must be an integer, got True"),
        ("monitor_port: 1.5\n", "monitor_port: must be an integer, got 1.5"),
        ("scrape_interval: 0s\n", "scrape_interval: must be greater than zero, got '0s'"),
        ("scrape_interval: soon\n", "scrape_interval: not a duration"),
        ("max_age: -5\n", "max_age: must not be negative: -5"),
        ("body_size_limit: lots\n", "body_size_limit: not a size"),
        ("identity: [a, b]\n", "identity: must be a non-empty string, got ['a', 'b']"),
        ('identity: ""\n', "identity: must be a non-empty string, got ''"),
        ('identity: "a\\tb"\n', "identity: must not contain control characters"),
        ("logfile: {a: 1}\n", "logfile: must be a non-empty string"),
        ("jobs: [a, b]\n", "jobs: must be a mapping, got list"),
        ("push_gateway: http://gw\n", "push_gateway: must be a mapping, got str"),
        ("jobs:\n  node: 3\n", "jobs.node: must be a mapping, got int"),
        ("jobs:\n  node:\n    targets: [http://a/]\n", "jobs.node.targets[0]: must be a mapping"),
        ("jobs:\n  1: {targets: [{url: 'http://a/'}]}\n", "jobs: keys must be strings, got 1"),
        ("- a\n- b\n", "(top level): must be a mapping, got list"),
    ],
)
def test_wrong_types_are_reported_with_their_key(tmp_path: Path, text: str, problem: str) -> None:
    problems = _problems(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'config.yaml'}: {problem}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "push_gateway: {url: 'gw:9091'}\n",
            "push_gateway.url: not an http(s) URL: 'gw:9091'",
        ),
        (
            "push_gateway: {url: 'http://'}\n",
            "push_gateway.url: not an http(s) URL: 'http://'",
        ),
        (
            "push_gateway: {url: 'http://gw:99999'}\n",
            "push_gateway.url: bad port in URL 'http://gw:99999'",
        ),
        (
            "jobs: {a: {targets: [{url: 'http://h:port/'}]}}\n",
            "jobs.a.targets[0].url: bad port in URL 'http://h:port/'",
        ),
        (
            "poller_stream: {urls: 'http://nats:4222'}\n",
            "poller_stream.urls: not a NATS URL: 'http://nats:4222'",
        ),
        ("poller_stream: {urls: []}\n", "poller_stream.urls: needs at least one URL"),
        ("poller_stream: {topic: x}\n", "poller_stream.urls: required: the NATS server URL(s)"),
        ("push_gateway: {timeout: 5s}\n", "push_gateway.url: required: the Pushgateway base URL"),
        ("jobs: {a: {targets: [{name: a}]}}\n", "jobs.a.targets[0].url: required"),
    ],
)
def test_bad_urls_are_reported(tmp_path: Path, text: str, problem: str) -> None:
    problems = _problems(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'config.yaml'}: {problem}")


def test_nats_urls_accept_list_or_comma_separated_text(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        poller_stream:
          urls: "n1:4222, tls://n2:4222"
        receiver_stream:
          urls: [nats://n3:4222, n4]
        """,
    )
    assert config.poller_stream is not None
    assert config.receiver_stream is not None
    assert config.poller_stream.urls == ("nats://n1:4222", "tls://n2:4222")
    assert config.receiver_stream.urls == ("nats://n3:4222", "nats://n4")


def test_stream_names_derive_from_topic_and_durable_is_sanitised(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        receiver_stream:
          urls: nats://n:4222
          topic: metrics.dc-1
          client_id: receiver.dc2 1
        """,
    )
    stream = config.receiver_stream
    assert stream is not None
    assert stream.stream == "METRICS_DC-1"
    assert stream.subjects == "metrics.dc-1.>"
    assert stream.durable == "receiver_dc2_1"


def test_bad_topic_and_stream_are_reported(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
        poller_stream:
          urls: nats://n:4222
          topic: "metrics.>"
          stream: "a.b"
        """,
    )
    path = tmp_path / "config.yaml"
    assert problems == [
        f"{path}: poller_stream.topic: must be dot-separated [A-Za-z0-9_-] tokens: 'metrics.>'",
        f"{path}: poller_stream.stream: must match [A-Za-z0-9_-]+: 'a.b'",
    ]


# -- TLS ---------------------------------------------------------------------------------


def test_top_level_tls_is_inherited_by_streams_without_their_own(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "identity: me\n"
        + MANUAL_TLS
        + """\
poller_stream:
  urls: nats://n1:4222
receiver_stream:
  urls: nats://n2:4222
  tls:
    scheme: puppet
    ssl_dir: /etc/puppetlabs/puppet/ssl
""",
    )
    assert config.tls == TLSConfig(
        scheme="manual",
        identity="me",
        ca="/etc/ps/ca.pem",
        cert="/etc/ps/cert.pem",
        key="/etc/ps/key.pem",
    )
    assert config.poller_stream is not None
    assert config.receiver_stream is not None
    assert config.poller_stream.tls == config.tls
    own = config.receiver_stream.tls
    assert own is not None
    assert own.scheme == "puppet"
    assert own.ca_file == "/etc/puppetlabs/puppet/ssl/certs/ca.pem"
    assert own.cert_file == "/etc/puppetlabs/puppet/ssl/certs/me.pem"
    assert own.key_file == "/etc/puppetlabs/puppet/ssl/private_keys/me.pem"


def test_streams_have_no_tls_without_any_tls_section(tmp_path: Path) -> None:
    config = _load(tmp_path, "poller_stream: {urls: 'n:4222'}\n")
    assert config.poller_stream is not None
    assert config.poller_stream.tls is None


def test_file_scheme_is_an_alias_of_manual(tmp_path: Path) -> None:
    config = _load(tmp_path, MANUAL_TLS.replace("manual", "file"))
    assert config.tls is not None
    assert config.tls.scheme == "manual"
    assert config.tls.ca_file == "/etc/ps/ca.pem"


def test_tls_requirements_per_scheme(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    assert _problems(tmp_path, "tls: {scheme: manual, ca: /ca.pem}\n") == [
        f"{path}: tls.cert: required with scheme: manual",
        f"{path}: tls.key: required with scheme: manual",
    ]
    assert _problems(tmp_path, "tls: {scheme: puppet}\n") == [
        f"{path}: tls.ssl_dir: required with scheme: puppet"
    ]
    assert _problems(tmp_path, "tls: {ca: /ca.pem}\n") == [
        f"{path}: tls.scheme: required: manual, file or puppet"
    ]
    assert _problems(tmp_path, "tls: {scheme: magic}\n") == [
        f"{path}: tls.scheme: must be one of manual, file, puppet, got 'magic'"
    ]


def test_tls_cache_key_is_obsolete_not_unknown(tmp_path: Path) -> None:
    config = _load(tmp_path, MANUAL_TLS + "  cache: /var/cache\n")
    assert config.warnings == (
        f"{tmp_path / 'config.yaml'}: tls.cache: ignored: "
        "only the Choria backplane used a certificate cache",
    )


# -- roles ----------------------------------------------------------------------------------


def test_problems_for_poller_lists_missing_sections(tmp_path: Path) -> None:
    config = _load(tmp_path, "identity: x\n")
    path = tmp_path / "config.yaml"
    assert config.problems_for("poller") == [
        f"{path}: poller_stream: required by the poller",
        f"{path}: jobs: the poller needs at least one job",
    ]
    with pytest.raises(ConfigError) as caught:
        config.require("poller")
    assert caught.value.problems == config.problems_for("poller")


def test_problems_for_receiver_lists_missing_sections(tmp_path: Path) -> None:
    config = _load(tmp_path, "identity: x\n")
    path = tmp_path / "config.yaml"
    assert config.problems_for("receiver") == [
        f"{path}: receiver_stream: required by the receiver",
        (
            f"{path}: push_gateway, remote_write: the receiver needs at least one output: "
            "a push_gateway section or a remote_write list"
        ),
    ]
    with pytest.raises(ConfigError):
        config.require("receiver")


def test_receiver_only_config_is_not_fit_for_polling(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        receiver_stream: {urls: "n:4222"}
        push_gateway: {url: "http://gw:9091/"}
        """,
    )
    assert config.problems_for("receiver") == []
    config.require("receiver")
    assert config.push_gateway is not None
    assert config.push_gateway.url == "http://gw:9091"
    assert describe(config)["fit_for"] == ["receiver"]


# -- files ------------------------------------------------------------------------------------


def test_invalid_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    assert _problems(tmp_path, "identity: x\n  bad: indent\n") == [
        f"{path}: line 2, column 6: invalid YAML: mapping values are not allowed here"
    ]


def test_unclosed_yaml_flow_reports_a_place(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "identity: x\njobs: [1, 2\n")
    assert problem.startswith(f"{tmp_path / 'config.yaml'}: line 3, column 1: invalid YAML: ")


def test_missing_file_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == [f"{path}: cannot read: No such file or directory"]


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"identity: na\xefve\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}: not UTF-8 text")


# -- known bugs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "push_gateway: {url: null}\n",  # loads with url 'http://invalid'
        "poller_stream: {urls: null}\n",  # loads with urls ()
        "jobs: {a: {targets: [{url: null}]}}\n",  # the target vanishes, job has no targets
        MANUAL_TLS.replace("scheme: manual", "scheme: null"),  # TLS silently off
    ],
)
def test_required_key_set_to_null_is_a_problem(tmp_path: Path, text: str) -> None:
    assert _problems(tmp_path, text)


def test_stream_tls_with_null_scheme_does_not_disable_tls(tmp_path: Path) -> None:
    text = MANUAL_TLS + "poller_stream:\n  urls: n:4222\n  tls: {scheme: null}\n"
    try:
        config = load(_write(tmp_path, text))
    except ConfigError as exc:  # rejecting the section is as good as keeping TLS
        assert any("poller_stream.tls.scheme" in p for p in exc.problems)
        return
    assert config.poller_stream is not None
    assert config.poller_stream.tls is not None


@pytest.mark.parametrize(
    "text",
    [
        'identity: "USDC1\\n"\n',
        'jobs: {"node\\n": {targets: [{url: "http://a/"}]}}\n',
        'jobs: {node: {targets: [{url: "http://a/", name: "a\\n"}]}}\n',
    ],
)
def test_trailing_newline_in_names_is_a_control_character(tmp_path: Path, text: str) -> None:
    problems = _problems(tmp_path, text)
    assert any("control characters" in p for p in problems)


def test_nan_scrape_interval_is_rejected(tmp_path: Path) -> None:
    assert _problems(tmp_path, "scrape_interval: .nan\n")


def test_stale_after_without_publisher_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "receiver_stream: {urls: nats://127.0.0.1:4222}\n"
        "push_gateway: {url: http://127.0.0.1:9091, stale_after: 10m}\n"
    )
    with pytest.raises(ConfigError, match="stale_after: needs publisher_label: true"):
        load(path)
