"""relabel(): Prometheus' own relabel test cases (relabel_test.go) as data, and ours."""

from __future__ import annotations

from typing import Any

import pytest
from relabel_cases import PROMETHEUS_CASES, RE2_ACCEPTED, RE2_REFUSED

from prometheus_streams.config.reader import Reader
from prometheus_streams.config.relabel import read_relabel_configs
from prometheus_streams.re2 import RE2Error, compile_anchored
from prometheus_streams.relabel import RelabelConfig, relabel

DROPPED = None


def rules(*raw: dict[str, Any]) -> tuple[RelabelConfig, ...]:
    """Rules as written in YAML, read by the config reader (which must accept them)."""
    reader = Reader("test.yaml")
    section = reader.root({"relabel_configs": list(raw)})
    assert section is not None
    configs = read_relabel_configs(section, "relabel_configs")
    assert reader.problems == []
    return configs


# Ours: defaults, templates as Go's Expand, RE2 syntax, and 2.42's corner cases.
OUR_CASES: list[tuple[dict[str, str], list[dict[str, Any]], dict[str, str] | None]] = [
    # Defaults: no source labels give "", which `(.*)` matches; replacement is a constant.
    ({"a": "x"}, [{"target_label": "env", "replacement": "prod"}], {"a": "x", "env": "prod"}),
    # Default replacement $1 with the default regex copies the joined value.
    ({"a": "x", "b": "y"}, [{"source_labels": ["a", "b"], "target_label": "c"}],
     {"a": "x", "b": "y", "c": "x;y"}),
    # Missing source labels join as empty strings.
    ({"a": "x", "b": "y"}, [{"source_labels": ["a", "nope", "b"], "target_label": "c",
                            "separator": "/"}],
     {"a": "x", "b": "y", "c": "x//y"}),
    # An empty result deletes the target label.
    ({"a": "x", "b": "y"}, [{"source_labels": ["nope"], "target_label": "b"}], {"a": "x"}),
    ({"a": "x", "b": "y"}, [{"source_labels": ["a"], "target_label": "b", "replacement": ""}],
     {"a": "x"}),
    # 2.42 deletes the target as written: a template target with an empty result is a no-op.
    ({"a": "foo", "foo": "y"}, [{"source_labels": ["a"], "target_label": "${1}",
                                "replacement": ""}],
     {"a": "foo", "foo": "y"}),
    # Go's Expand: $$, $name as long as possible, named groups, unknown names empty.
    ({"a": "k-v"}, [{"source_labels": ["a"], "regex": "(?P<key>[a-z])-(?P<val>[a-z])",
                     "target_label": "out", "replacement": "$$${key}=$val.$1x|${val}|$nope|$0"}],
     {"a": "k-v", "out": "$k=v.|v||k-v"}),
    ({"a": "x"}, [{"source_labels": ["a"], "target_label": "b", "replacement": "$"}],
     {"a": "x", "b": "$"}),
    ({"a": "x"}, [{"source_labels": ["a"], "target_label": "b", "replacement": "${1"}],
     {"a": "x", "b": "${1"}),
    ({"a": "x"}, [{"source_labels": ["a"], "target_label": "b", "replacement": "$01$1"}],
     {"a": "x", "b": "x"}),
    # Anchored: the regex must match the whole value.
    ({"a": "xfoox"}, [{"source_labels": ["a"], "regex": "foo", "action": "keep"}], DROPPED),
    ({"a": "foo\n"}, [{"source_labels": ["a"], "regex": "foo$", "action": "keep"}], DROPPED),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "fo\\z|x", "action": "keep"}], DROPPED),
    ({"a": "fo"}, [{"source_labels": ["a"], "regex": "fo\\z|x", "action": "keep"}], {"a": "fo"}),
    # RE2 flags anywhere, scoped to the rest of their group, across alternations.
    ({"a": "FOO"}, [{"source_labels": ["a"], "regex": "(?i)foo", "action": "keep"}], {"a": "FOO"}),
    ({"a": "C"}, [{"source_labels": ["a"], "regex": "a(?i)b|c", "action": "keep"}], {"a": "C"}),
    ({"a": "A"}, [{"source_labels": ["a"], "regex": "(?i:b)|a", "action": "keep"}], DROPPED),
    # \d and \w are ASCII in RE2.
    ({"a": "٣"}, [{"source_labels": ["a"], "regex": "\\d", "action": "keep"}], DROPPED),
    ({"a": "é"}, [{"source_labels": ["a"], "regex": "[\\w]", "action": "keep"}], DROPPED),
    ({"a": "x{,3}"}, [{"source_labels": ["a"], "regex": "x{,3}", "action": "keep"}],
     {"a": "x{,3}"}),
    ({"a": "ab"}, [{"source_labels": ["a"], "regex": "[[:alpha:]]+", "action": "keep"}],
     {"a": "ab"}),
    # `regex:` without a value is the empty regex in Prometheus, not the default.
    ({"a": "x"}, [{"source_labels": ["a"], "regex": None, "action": "keep"}], DROPPED),
    ({}, [{"source_labels": ["a"], "regex": None, "action": "keep"}], {}),
    # Set to empty deletes: lowercase of an absent label removes the target.
    ({"a": "x", "b": "y"}, [{"source_labels": ["nope"], "target_label": "b",
                            "action": "lowercase"}],
     {"a": "x"}),
    # labelmap walks the labels sorted by name: the last source of a name wins.
    ({"__meta_a_x": "1", "__meta_b_x": "2", "x": "0"},
     [{"regex": "__meta_[ab]_(.*)", "action": "labelmap"}],
     {"__meta_a_x": "1", "__meta_b_x": "2", "x": "2"}),
    # hashmod: md5's last 8 bytes, big-endian, modulo; a custom separator joins.
    ({"a": "foo", "b": "bar"}, [{"source_labels": ["a", "b"], "separator": "", "modulus": 7,
                                "target_label": "h", "action": "hashmod"}],
     {"a": "foo", "b": "bar", "h": str(int.from_bytes(
         bytes.fromhex("3858f62230ac3c915f300c664312c63f")[8:], "big") % 7)}),
    # keepequal compares with the target label's value, empty when absent.
    ({"a": ""}, [{"source_labels": ["a"], "target_label": "b", "action": "keepequal"}], {"a": ""}),
    # Go's simple case mapping, as a real 2.42 does it: ß stays, İ lowers to i.
    ({"a": "Stra\u00dfe \u0130stanbul"},
     [{"source_labels": ["a"], "target_label": "u", "action": "uppercase"},
      {"source_labels": ["a"], "target_label": "l", "action": "lowercase"}],
     {"a": "Stra\u00dfe \u0130stanbul", "u": "STRA\u00dfE \u0130STANBUL",
      "l": "stra\u00dfe istanbul"}),
    # Action names are case-insensitive.
    ({"a": "x"}, [{"source_labels": ["a"], "regex": "x", "action": "DROP"}], DROPPED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "raw", "expected"),
    PROMETHEUS_CASES,
    ids=[f"prom{i}" for i in range(len(PROMETHEUS_CASES))],
)
def test_prometheus_relabel_cases(
    labels: dict[str, str], raw: list[dict[str, Any]], expected: dict[str, str] | None
) -> None:
    before = dict(labels)
    assert relabel(labels, rules(*raw)) == expected
    assert labels == before


@pytest.mark.parametrize(("labels", "raw", "expected"), OUR_CASES)
def test_relabel_semantics(
    labels: dict[str, str], raw: list[dict[str, Any]], expected: dict[str, str] | None
) -> None:
    before = dict(labels)
    assert relabel(labels, rules(*raw)) == expected
    assert labels == before


def test_every_action_is_covered() -> None:
    seen = {rule.get("action", "replace").lower() for _, raw, _ in PROMETHEUS_CASES + OUR_CASES
            for rule in raw}  # fmt: skip
    assert seen == {
        "replace", "keep", "drop", "keepequal", "dropequal", "hashmod",
        "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
    }  # fmt: skip


def test_unchanged_labels_come_back_as_they_are() -> None:
    labels = {"__name__": "up", "job": "node"}
    keep = rules({"source_labels": ["__name__"], "regex": "down", "action": "drop"})
    assert relabel(labels, keep) is labels
    assert relabel(labels, ()) is labels


@pytest.mark.parametrize("pattern", RE2_REFUSED)
def test_what_re2_does_not_have_is_refused(pattern: str) -> None:
    with pytest.raises(RE2Error):
        compile_anchored(pattern)


@pytest.mark.parametrize("pattern", RE2_ACCEPTED)
def test_what_re2_has_is_accepted(pattern: str) -> None:
    compile_anchored(pattern)


def test_remembered_outcomes_stay_bounded_and_right() -> None:
    (drop,) = rules({"source_labels": ["a"], "regex": "x[0-9]+", "action": "drop"})
    for round_ in range(2):
        for i in range(10_000):
            value = f"x{i}" if i % 2 else f"y{i}"
            assert (relabel({"a": value}, [drop]) is None) == bool(i % 2), (round_, value)
    assert 0 < len(drop._seen) <= 4096


@pytest.mark.parametrize("regex", ["a|b", "(a|b)", "a|b|"])
def test_names_alternation_same_with_or_without_shortcut(regex: str) -> None:
    labels = {"a": "1", "b": "2", "c": "3", "": "4"}
    (drop,) = rules({"regex": regex, "action": "labeldrop"})
    (keep,) = rules({"regex": regex, "action": "labelkeep"})
    # What labeldrop leaves: the empty alternative matches the empty name too.
    left = {"c": "3"} if regex.endswith("|") else {"c": "3", "": "4"}
    assert relabel(labels, [drop]) == left
    assert relabel(labels, [keep]) == {k: v for k, v in labels.items() if k not in left}
    assert relabel({"x": "a|b"}, rules({"source_labels": ["x"], "regex": regex,
                                        "action": "keep"})) is None  # fmt: skip


@pytest.mark.parametrize("pattern", ["\\pL", "\\p{Greek}", "(?P<a>x)(?P<a>y)", "(?P<1a>x)"])
def test_what_re2_has_but_python_cannot_is_refused_clearly(pattern: str) -> None:
    """The documented differences: refused with the pattern named, never silently changed."""
    with pytest.raises(RE2Error, match=r"not supported|invalid regular expression '"):
        compile_anchored(pattern)
