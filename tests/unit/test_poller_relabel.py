"""The poller: targets through relabel_configs, pages through metric_relabel_configs."""

from __future__ import annotations

import gzip
from dataclasses import replace
from typing import Any

import pytest

from prometheus_streams.config import Job, Target
from prometheus_streams.config.reader import Reader
from prometheus_streams.config.relabel import read_relabel_configs
from prometheus_streams.poller.payload import build_rewritten_payload
from prometheus_streams.poller.rewrite import SeriesCache, rewrite_page
from prometheus_streams.poller.scraper import ScrapeResult
from prometheus_streams.poller.target_relabel import relabel_target, target_labels
from prometheus_streams.receiver.remote_write.text import parse_page, series_labels
from prometheus_streams.relabel import RelabelConfig


def rules(raw: list[dict[str, Any]]) -> tuple[RelabelConfig, ...]:
    """Rules read as the config reader reads them; no problems allowed."""
    reader = Reader("poller.yaml")
    section = reader.root({"rules": raw})
    assert section is not None
    result = read_relabel_configs(section, "rules")
    assert not reader.problems, reader.problems
    return result


JOB = Job(name="node", targets=(), scrape_interval=15, scrape_timeout=10, body_size_limit=2**20)
TARGET = Target(name="h1:9100", url="http://h1:9100/metrics", labels=(("dc", "a"),))


def test_a_job_without_rules_keeps_its_targets_as_they_are() -> None:
    assert relabel_target(JOB, TARGET) is TARGET


def test_starting_labels_are_prometheus_ones() -> None:
    job = replace(JOB, params=(("module", ("if_mib",)),))
    target = Target(name="h1:9100", url="https://h1:9100/snmp?target=x")
    assert target_labels(job, target) == {
        "__address__": "h1:9100",
        "__scheme__": "https",
        "__metrics_path__": "/snmp",
        "__param_target": "x",
        "__param_module": "if_mib",
        "job": "node",
    }


def test_discovery_metadata_is_seen_by_the_rules_and_then_dropped() -> None:
    target = replace(TARGET, meta=(("__meta_dns_name", "_node._tcp.dc1"),))
    assert target_labels(JOB, target)["__meta_dns_name"] == "_node._tcp.dc1"
    job = replace(
        JOB,
        relabel_configs=rules(
            [{"source_labels": ["__meta_dns_name"], "regex": "_node.*", "action": "keep"}]
        ),
    )
    kept = relabel_target(job, target)
    assert kept is not None and kept.labels == (("dc", "a"),) and kept.meta == ()
    assert relabel_target(job, TARGET) is None


def test_url_is_rebuilt_and_instance_defaults_to_the_address() -> None:
    job = replace(
        JOB,
        params=(("module", ("if_mib",)),),
        relabel_configs=rules(
            [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"target_label": "__address__", "replacement": "exporter:9116"},
                {"target_label": "__metrics_path__", "replacement": "/snmp"},
                {"source_labels": ["__param_target"], "target_label": "__tmp_seen"},
            ]
        ),
    )
    out = relabel_target(job, TARGET)
    assert out is not None
    assert out.url == "http://exporter:9116/snmp?module=if_mib&target=h1%3A9100"
    assert out.name == "exporter:9116"
    assert out.labels == (("dc", "a"),)  # __tmp_seen and every __ label removed


def test_instance_set_by_a_rule_names_the_target() -> None:
    job = replace(
        JOB,
        relabel_configs=rules(
            [
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__param_target", "replacement": "h9"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "role", "replacement": "db"},
            ]
        ),
    )
    out = relabel_target(job, TARGET)
    assert out is not None
    assert out.name == "h9"
    assert out.url == "http://h1:9100/metrics?target=h9"
    assert out.labels == (("dc", "a"), ("role", "db"))


def test_keep_and_drop_targets() -> None:
    job = replace(
        JOB, relabel_configs=rules([{"source_labels": ["dc"], "regex": "b", "action": "keep"}])
    )
    assert relabel_target(job, TARGET) is None
    assert relabel_target(job, replace(TARGET, labels=(("dc", "b"),))) is not None
    job = replace(
        JOB,
        relabel_configs=rules(
            [{"source_labels": ["__address__"], "action": "drop", "regex": "h1:.*"}]
        ),
    )
    assert relabel_target(job, TARGET) is None


def test_credentials_in_the_url_survive_without_being_a_label() -> None:
    job = replace(JOB, relabel_configs=rules([{"target_label": "x", "replacement": "y"}]))
    out = relabel_target(job, Target(name="h1:80", url="http://u:p@h1/metrics"))
    assert out is not None
    assert out.url == "http://u:p@h1:80/metrics"
    assert out.labels == (("x", "y"),)


PAGE = (
    b"# HELP go_goroutines Goroutines.\n"
    b"# TYPE go_goroutines gauge\n"
    b"go_goroutines 12\n"
    b"# TYPE node_cpu_seconds_total counter\n"
    b'node_cpu_seconds_total{cpu="0",mode="idle"} 1.5 1700000000000\n'
    b'node_cpu_seconds_total{cpu="0",mode="user"} 2.5\n'
    b"# TYPE http_latency histogram\n"
    b'http_latency_bucket{le="+Inf",path="a\\"b\\\\c\\nd"} 3\n'
    b'http_latency_sum{path="a\\"b\\\\c\\nd"} 0.25\n'
    b'http_latency_count{path="a\\"b\\\\c\\nd"} 3\n'
)
LABELS = {"job": "node", "instance": "h1:9100"}


def _series(body: bytes) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(series_labels(key)): value for key, value, _ in parse_page(body)}


def test_no_rule_changes_nothing_but_the_layout() -> None:
    job = replace(
        JOB,
        metric_relabel_configs=rules([{"source_labels": ["x"], "action": "drop", "regex": "y"}]),
    )
    out = rewrite_page(PAGE, job, LABELS, SeriesCache())
    assert out.error == ""
    assert _series(out.body) == _series(PAGE)
    assert out.samples_post == 6 and out.series_added == 6
    assert (
        b"# HELP go_goroutines Goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n"
        in out.body
    )
    assert b"1700000000000" in out.body


def test_escaping_round_trips_through_the_parser() -> None:
    job = replace(
        JOB,
        metric_relabel_configs=rules(
            # (?s): the value holds a newline, which `.` does not match in RE2 either.
            [{"source_labels": ["path"], "target_label": "copy", "regex": "(?s)(.*)"}]
        ),
    )
    out = rewrite_page(PAGE, job, LABELS, SeriesCache())
    series = _series(out.body)
    key = (("__name__", "http_latency_sum"), ("path", 'a"b\\c\nd'), ("copy", 'a"b\\c\nd'))
    assert series[key] == 0.25


def test_dropped_family_loses_its_type_line_and_labeldrop_applies() -> None:
    job = replace(
        JOB,
        metric_relabel_configs=rules(
            [
                {"source_labels": ["__name__"], "regex": "http_latency_.*", "action": "drop"},
                {"regex": "mode", "action": "labeldrop"},
                {"source_labels": ["instance"], "target_label": "host", "regex": "(.*):.*"},
            ]
        ),
    )
    out = rewrite_page(PAGE, job, LABELS, SeriesCache(), honor_timestamps=False)
    assert b"http_latency" not in out.body
    assert b"# TYPE node_cpu_seconds_total counter\n" in out.body
    assert b"1700000000000" not in out.body
    # Target labels take part in the rules but travel beside the page, unless changed.
    assert _series(out.body) == {
        (("__name__", "go_goroutines"), ("host", "h1")): 12.0,
        (("__name__", "node_cpu_seconds_total"), ("cpu", "0"), ("host", "h1")): 2.5,
    }


def test_series_added_counts_only_new_series() -> None:
    job = replace(JOB, metric_relabel_configs=rules([{"regex": "mode", "action": "labeldrop"}]))
    cache = SeriesCache()
    assert rewrite_page(PAGE, job, LABELS, cache).series_added == 6
    again = rewrite_page(PAGE + b"new_one 1\n", job, LABELS, cache)
    assert again.series_added == 1


def test_sample_limit_fails_the_scrape_with_up_0() -> None:
    job = replace(JOB, sample_limit=5)
    result = ScrapeResult(started=1.0, duration=0.5, body=PAGE)
    payload, failed = build_rewritten_payload(result, job, LABELS, SeriesCache())
    assert failed.error == "sample_limit" and "6 > 5" in failed.detail
    text = gzip.decompress(payload.data)
    assert b"\nup 0\n" in text and b"go_goroutines" not in text
    assert b"scrape_samples_post_metric_relabeling 6\n" in text
    ok, same = build_rewritten_payload(result, replace(job, sample_limit=6), LABELS, SeriesCache())
    assert same.ok and b"\nup 1\n" in gzip.decompress(ok.data)


def test_label_limits() -> None:
    for job in (
        replace(JOB, label_limit=3),
        replace(JOB, label_name_length_limit=4),
        replace(JOB, label_value_length_limit=5),
    ):
        out = rewrite_page(PAGE, job, LABELS, SeriesCache())
        assert out.error == "label_limit", job
    assert rewrite_page(PAGE, replace(JOB, label_limit=5), LABELS, SeriesCache()).error == ""


def test_a_reserved_label_set_by_a_rule_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = replace(JOB, relabel_configs=rules([{"target_label": "publisher", "replacement": "x"}]))
    out = relabel_target(job, TARGET)
    assert out is not None and out.labels == (("dc", "a"),)
    assert "reserved label 'publisher'" in caplog.text
