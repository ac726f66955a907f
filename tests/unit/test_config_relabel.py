"""relabel_configs: every rule Prometheus 2.42 refuses is refused, named by file and key path."""

from __future__ import annotations

from typing import Any

import pytest

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


# Each rule Prometheus' Validate (or its YAML reading) refuses, and the key we name.
REFUSED = [
    ({"target_label": "a", "colour": "red"}, "colour: unknown key"),
    ({"target_label": "a", "sourcelabels": ["a"]}, "sourcelabels: unknown key, did you mean"),
    ({"action": "rename"}, "action: unknown relabel action 'rename'"),
    ({"action": None}, "action: must not be empty"),
    ({"action": ["drop"]}, "action: must be a string"),
    ({"source_labels": "a", "target_label": "b"}, "source_labels: must be a list"),
    ({"source_labels": ["a", "1b"], "target_label": "b"}, "source_labels[1]: not a valid label"),
    ({"source_labels": ["a"], "target_label": "b", "regex": "(?=x)"}, "regex: lookaround"),
    ({"source_labels": ["a"], "target_label": "b", "regex": "(x)\\1"}, "regex: backreferences"),
    ({"source_labels": ["a"], "target_label": "b", "regex": "(x"}, "regex: missing )"),
    ({"source_labels": ["a"], "regex": "x"}, "target_label: required for action replace"),
    ({"source_labels": ["a"], "target_label": "1a"}, "target_label: not a valid label name"),
    ({"source_labels": ["a"], "target_label": "a-b"}, "target_label: not a valid label name"),
    ({"source_labels": ["a"], "target_label": "0${1}"}, "target_label: not a valid label name"),
    ({"source_labels": ["a"], "target_label": "${"}, "target_label: not a valid label name"),
    ({"source_labels": ["a"], "target_label": "h", "action": "hashmod"},
     "modulus: required (greater than zero) for action hashmod"),
    ({"source_labels": ["a"], "target_label": "h", "action": "hashmod", "modulus": -1},
     "modulus: must be a whole number"),
    ({"source_labels": ["a"], "target_label": "h", "action": "hashmod", "modulus": "8"},
     "modulus: must be a whole number"),
    ({"source_labels": ["a"], "action": "hashmod", "modulus": 8},
     "target_label: required for action hashmod"),
    ({"source_labels": ["a"], "target_label": "${1}", "action": "hashmod", "modulus": 8},
     "target_label: not a valid label name"),
    ({"source_labels": ["a"], "action": "lowercase"}, "target_label: required for action"),
    ({"source_labels": ["a"], "action": "uppercase", "target_label": "b", "replacement": "x"},
     "replacement: not allowed for action uppercase"),
    ({"source_labels": ["a"], "action": "keepequal"}, "target_label: required for action"),
    ({"source_labels": ["a"], "action": "dropequal", "target_label": "b", "regex": "(.*)"},
     "regex: not allowed for action dropequal"),
    ({"source_labels": ["a"], "action": "keepequal", "target_label": "b", "separator": ","},
     "separator: not allowed for action keepequal"),
    ({"source_labels": ["a"], "action": "keepequal", "target_label": "b", "modulus": 2},
     "modulus: not allowed for action keepequal"),
    ({"source_labels": ["a"], "action": "dropequal", "target_label": "b", "replacement": "x"},
     "replacement: not allowed for action dropequal"),
    ({"regex": "a", "action": "labeldrop", "source_labels": []},
     "source_labels: not allowed for action labeldrop (only regex)"),
    ({"regex": "a", "action": "labelkeep", "target_label": "b"},
     "target_label: not allowed for action labelkeep"),
    ({"regex": "a", "action": "labelkeep", "replacement": "b"},
     "replacement: not allowed for action labelkeep"),
    ({"regex": "a", "action": "labeldrop", "separator": ","},
     "separator: not allowed for action labeldrop"),
    ({"regex": "a", "action": "labeldrop", "modulus": 3},
     "modulus: not allowed for action labeldrop"),
    ({"regex": "(.*)", "action": "labelmap", "replacement": "-$1"},
     "replacement: not a valid label name or template"),
    ({"target_label": "b", "replacement": {"x": 1}}, "replacement: must be a string"),
    ({"target_label": "b", "separator": [";"]}, "separator: must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "expected"), REFUSED)
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


ACCEPTED = [
    # What Prometheus accepts that looks suspicious.
    {"source_labels": ["a"], "target_label": "${1}x"},
    {"source_labels": ["a"], "target_label": "x", "regex": 0},
    {"source_labels": ["a"], "target_label": "x", "replacement": ""},
    {"source_labels": ["a"], "action": "keepequal", "target_label": "b", "separator": ";"},
    {"source_labels": ["a"], "action": "lowercase", "target_label": "b", "replacement": "$1"},
    {"regex": "a", "action": "labelkeep", "separator": ";", "source_labels": None},
    {"regex": "__meta_(.+)", "action": "labelmap"},
    {"source_labels": ["a"], "regex": "x", "action": "Drop"},
    {"source_labels": [], "regex": "", "action": "keep"},
]


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
