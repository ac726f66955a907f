"""`domain` and `sources`: the stream sections of a multi-datacenter layout (docs/topology.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prometheus_streams.check_config import describe
from prometheus_streams.config import Config, load
from prometheus_streams.errors import ConfigError


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load(path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return caught.value.problems


def test_a_poller_in_a_domain_keeps_an_edge_stream_of_its_own_subjects(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        identity: dc1
        poller_stream: {urls: nats://leaf:4222, domain: dc1}
        """,
    )
    stream = config.poller_stream
    assert stream is not None
    assert (stream.domain, stream.api_prefix) == ("dc1", "$JS.dc1.API")
    assert stream.subjects == "prometheus.dc1.>"
    shown = describe(config)["poller_stream"]
    assert shown["domain"] == "dc1"
    assert "edge stream PROMETHEUS in JetStream domain dc1" in shown["explained"]


def test_a_central_stream_sources_datacenter_streams(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """\
        receiver_stream:
          urls: nats://central:4222
          domain: central
          sources:
            - {name: PROMETHEUS, domain: dc1, publisher: dc1}
            - {name: EDGE, api_prefix: "$JS.dc2.API", deliver_prefix: deliver.dc2}
        push_gateway: {url: "http://pgw:9091"}
        """,
    )
    stream = config.receiver_stream
    assert stream is not None
    assert stream.subjects == "prometheus.>"  # the consumer's filter: any publisher
    assert [s.api for s in stream.sources] == ["$JS.dc1.API", "$JS.dc2.API"]
    shown = describe(config)["receiver_stream"]
    assert shown["sources"] == [
        {
            "stream": "PROMETHEUS",
            "jetstream_api": "$JS.dc1.API",
            "deliver_prefix": None,
            "takes": "prometheus.dc1.>",
        },
        {
            "stream": "EDGE",
            "jetstream_api": "$JS.dc2.API",
            "deliver_prefix": "deliver.dc2",
            "takes": "prometheus.> (any publisher: set publisher to bind it to one)",
        },
    ]
    assert "built from 2 datacenter stream(s)" in shown["explained"]


def test_bad_domains_and_sources_name_the_file_and_key(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
        poller_stream:
          urls: nats://leaf:4222
          domain: "dc.1"
          sources: [{name: X}]
        receiver_stream:
          urls: nats://central:4222
          sources:
            - {name: "a.b", domain: dc1, api_prefix: "$JS.dc1.API"}
            - {name: X, domian: dc2}
            - {name: X, deliver_prefix: "d.>"}
        push_gateway: {url: "http://pgw:9091"}
        """,
    )
    path = tmp_path / "config.yaml"
    text = "\n".join(problems)
    assert f"{path}: poller_stream.domain: a JetStream domain must match" in text
    assert f"{path}: poller_stream.sources: only the receiver builds a stream from sources" in text
    assert f"{path}: receiver_stream.sources[0].name: required" in text
    assert f"{path}: receiver_stream.sources[0]: choose domain or api_prefix, not both" in text
    assert f"{path}: receiver_stream.sources[1].domian" in text
    assert f"{path}: receiver_stream.sources[2].deliver_prefix: must be a subject" in text
    assert f"{path}: receiver_stream.sources[2]: stream X of that domain is listed twice" in text
