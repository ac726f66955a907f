"""relabel_configs: every rule Prometheus 2.42 refuses is refused, named by file and key path."""

from __future__ import annotations

from typing import Any

import pytest
from relabel_cases import ACCEPTED, REFUSED, STRICTER

from prometheus_streams.config.reader import Reader
from prometheus_streams.config.relabel import read_relabel_configs
from prometheus_streams.relabel import DEFAULT_REGEX


def _read(value: object) -> tuple[int, list[str]]:
    reader = Reader("poller.yaml")
    section = reader.root({"jobs": {"node": {"metric_relabel_configs": value}}})
    assert section is not None
    job = section.mapping("jobs")
    assert job is not None
    node = job.mapping("node")
    assert node is not None
    return len(read_relabel_configs(node, "metric_relabel_configs")), reader.problems


def _problem(rule: dict[str, Any]) -> str:
    """The one problem of a list holding `rule` after a good rule, with its path checked."""
    count, problems = _read([{"target_label": "ok"}, rule])
    assert count == 1, problems
    assert len(problems) == 1, problems
    prefix = "poller.yaml: jobs.node.metric_relabel_configs[1]."
    assert problems[0].startswith(prefix), problems
    return problems[0].removeprefix(prefix)


@pytest.mark.parametrize(("rule", "expected"), REFUSED + STRICTER)
def test_refused_rule_is_named_by_its_key(rule: dict[str, Any], expected: str) -> None:
    assert _problem(rule).startswith(expected)


def test_not_a_list_is_refused() -> None:
    count, problems = _read({"action": "drop"})
    assert count == 0
    assert problems == [
        "poller.yaml: jobs.node.metric_relabel_configs: must be a list of rules "
        "(- source_labels: [...] ...)"
    ]


def test_a_rule_that_is_no_mapping_is_refused() -> None:
    count, problems = _read(["drop"])
    assert count == 0
    assert problems == [
        "poller.yaml: jobs.node.metric_relabel_configs[0]: must be a mapping, got str"
    ]


def test_every_problem_of_a_rule_is_reported() -> None:
    count, problems = _read([{"action": "labeldrop", "target_label": "x", "separator": ","}])
    assert count == 0
    assert len(problems) == 2


@pytest.mark.parametrize("rule", ACCEPTED)
def test_what_prometheus_accepts_is_accepted(rule: dict[str, Any]) -> None:
    assert _read([rule]) == (1, [])


def test_defaults_are_prometheus_defaults() -> None:
    reader = Reader("poller.yaml")
    section = reader.root({"r": [{"target_label": "x"}, {"target_label": "x", "regex": None}]})
    assert section is not None
    default, empty = read_relabel_configs(section, "r")
    assert (default.action, default.separator, default.replacement) == ("replace", ";", "$1")
    assert default.regex is DEFAULT_REGEX
    assert empty.regex.fullmatch("") is not None and empty.regex.fullmatch("a") is None


def test_absent_or_empty_key_is_no_rules() -> None:
    assert _read(None) == (0, [])
    assert _read([]) == (0, [])


def test_a_value_yaml_converted_is_taken_with_a_warning() -> None:
    reader = Reader("poller.yaml")
    raw = [
        {"source_labels": ["a"], "regex": 0.50, "action": "drop"},
        {"source_labels": ["a"], "regex": True, "action": "drop"},
    ]
    section = reader.root({"r": raw})
    assert section is not None
    rules = read_relabel_configs(section, "r")
    assert [rule.regex.fullmatch("0.5") is not None for rule in rules] == [True, False]
    assert rules[1].regex.fullmatch("true") is not None
    assert reader.problems == []
    assert reader.warnings == [
        "poller.yaml: r[0].regex: read as '0.5'; quote the value to be sure of its text",
        "poller.yaml: r[1].regex: read as 'true'; quote the value to be sure of its text",
    ]
