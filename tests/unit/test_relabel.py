"""relabel(): Prometheus' own relabel test cases (relabel_test.go) as data, and ours."""

from __future__ import annotations

from typing import Any

import pytest
from relabel_cases import RE2_ACCEPTED, RE2_REFUSED

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


# Prometheus' TestRelabel, case by case: input labels, rules, labels out (None: dropped).
PROMETHEUS_CASES: list[tuple[dict[str, str], list[dict[str, Any]], dict[str, str] | None]] = [
    (
        {"a": "foo", "b": "bar", "c": "baz"},
        [{"source_labels": ["a"], "regex": "f(.*)", "target_label": "d",
          "replacement": "ch${1}-ch${1}"}],
        {"a": "foo", "b": "bar", "c": "baz", "d": "choo-choo"},
    ),
    (
        {"a": "foo", "b": "bar", "c": "baz"},
        [
            {"source_labels": ["a", "b"], "regex": "f(.*);(.*)r", "target_label": "a",
             "replacement": "b${1}${2}m"},
            {"source_labels": ["c", "a"], "regex": "(b).*b(.*)ba(.*)", "target_label": "d",
             "replacement": "$1$2$2$3"},
        ],
        {"a": "boobam", "b": "bar", "c": "baz", "d": "boooom"},
    ),
    (
        {"a": "foo"},
        [
            {"source_labels": ["a"], "regex": ".*o.*", "action": "drop"},
            {"source_labels": ["a"], "regex": "f(.*)", "target_label": "d",
             "replacement": "ch$1-ch$1"},
        ],
        DROPPED,
    ),
    ({"a": "foo", "b": "bar"}, [{"source_labels": ["a"], "regex": ".*o.*", "action": "drop"}],
     DROPPED),
    (
        {"a": "abc"},
        [{"source_labels": ["a"], "regex": ".*(b).*", "target_label": "d", "replacement": "$1"}],
        {"a": "abc", "d": "b"},
    ),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "no-match", "action": "drop"}],
     {"a": "foo"}),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "f|o", "action": "drop"}], {"a": "foo"}),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "no-match", "action": "keep"}], DROPPED),
    ({"a": "foo"}, [{"source_labels": ["a"], "regex": "f.*", "action": "keep"}], {"a": "foo"}),
    (  # no replacement without a match
        {"a": "boo"},
        [{"source_labels": ["a"], "regex": "f", "target_label": "b", "replacement": "bar"}],
        {"a": "boo"},
    ),
    (
        {"a": "foo", "b": "bar", "c": "baz"},
        [{"source_labels": ["c"], "target_label": "d", "action": "hashmod", "modulus": 1000}],
        {"a": "foo", "b": "bar", "c": "baz", "d": "976"},
    ),
    (
        {"a": "foo\nbar"},
        [{"source_labels": ["a"], "target_label": "b", "action": "hashmod", "modulus": 1000}],
        {"a": "foo\nbar", "b": "734"},
    ),
    (
        {"a": "foo", "b1": "bar", "b2": "baz"},
        [{"regex": "(b.*)", "replacement": "bar_${1}", "action": "labelmap"}],
        {"a": "foo", "b1": "bar", "b2": "baz", "bar_b1": "bar", "bar_b2": "baz"},
    ),
    (
        {"a": "foo", "__meta_my_bar": "aaa", "__meta_my_baz": "bbb", "__meta_other": "ccc"},
        [{"regex": "__meta_(my.*)", "replacement": "${1}", "action": "labelmap"}],
        {"a": "foo", "__meta_my_bar": "aaa", "__meta_my_baz": "bbb", "__meta_other": "ccc",
         "my_bar": "aaa", "my_baz": "bbb"},
    ),
    (  # target_label from the match
        {"a": "some-name-value"},
        [{"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "replacement": "${2}",
          "target_label": "${1}"}],
        {"a": "some-name-value", "name": "value"},
    ),
    (  # replacement from a group the regex does not have: empty, nothing set
        {"a": "some-name-value"},
        [{"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "replacement": "${3}",
          "target_label": "${1}"}],
        {"a": "some-name-value"},
    ),
    (  # target_label expanding to no valid name
        {"a": "some-name-0"},
        [
            {"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "replacement": "${1}",
             "target_label": "${3}"},
            {"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "replacement": "${1}",
             "target_label": "${3}"},
            {"source_labels": ["a"], "regex": "some-([^-]+)(-[^,]+)", "replacement": "${1}",
             "target_label": "${3}"},
        ],
        {"a": "some-name-0"},
    ),
    (
        {"__meta_sd_tags": "path:/secret,job:some-job,label:foo=bar"},
        [
            {"source_labels": ["__meta_sd_tags"], "regex": "(?:.+,|^)path:(/[^,]+).*",
             "replacement": "${1}", "target_label": "__metrics_path__"},
            {"source_labels": ["__meta_sd_tags"], "regex": "(?:.+,|^)job:([^,]+).*",
             "replacement": "${1}", "target_label": "job"},
            {"source_labels": ["__meta_sd_tags"], "regex": "(?:.+,|^)label:([^=]+)=([^,]+).*",
             "replacement": "${2}", "target_label": "${1}"},
        ],
        {"__meta_sd_tags": "path:/secret,job:some-job,label:foo=bar",
         "__metrics_path__": "/secret", "job": "some-job", "foo": "bar"},
    ),
    (  # prometheus/prometheus#12283
        {"__meta_kubernetes_pod_container_port_name": "foo",
         "__meta_kubernetes_pod_annotation_XXX_metrics_port": "9091"},
        [
            {"regex": "^__meta_kubernetes_pod_container_port_name$", "action": "labeldrop"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_XXX_metrics_port"],
             "regex": "(.+)", "replacement": "metrics",
             "target_label": "__meta_kubernetes_pod_container_port_name"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"],
             "regex": "^metrics$", "action": "keep"},
        ],
        {"__meta_kubernetes_pod_annotation_XXX_metrics_port": "9091",
         "__meta_kubernetes_pod_container_port_name": "metrics"},
    ),
    ({"a": "foo", "b1": "bar", "b2": "baz"}, [{"regex": "(b.*)", "action": "labelkeep"}],
     {"b1": "bar", "b2": "baz"}),
    ({"a": "foo", "b1": "bar", "b2": "baz"}, [{"regex": "(b.*)", "action": "labeldrop"}],
     {"a": "foo"}),
    (
        {"foo": "bAr123Foo"},
        [
            {"source_labels": ["foo"], "action": "uppercase", "target_label": "foo_uppercase"},
            {"source_labels": ["foo"], "action": "lowercase", "target_label": "foo_lowercase"},
        ],
        {"foo": "bAr123Foo", "foo_lowercase": "bar123foo", "foo_uppercase": "BAR123FOO"},
    ),
    (
        {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"},
        [{"source_labels": ["__tmp_port"], "action": "keepequal", "target_label": "__port1"}],
        {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"},
    ),
    (
        {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"},
        [{"source_labels": ["__tmp_port"], "action": "dropequal", "target_label": "__port1"}],
        DROPPED,
    ),
    (
        {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"},
        [{"source_labels": ["__tmp_port"], "action": "dropequal", "target_label": "__port2"}],
        {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"},
    ),
    (
        {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"},
        [{"source_labels": ["__tmp_port"], "action": "keepequal", "target_label": "__port2"}],
        DROPPED,
    ),
]  # fmt: skip

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
    ("labels", "raw", "expected"), PROMETHEUS_CASES, ids=[f"prom{i}" for i in range(26)]
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
