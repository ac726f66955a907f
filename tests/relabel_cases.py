"""Relabel rules Prometheus 2.42 refuses and accepts, and what it refuses them for.

Shared by the unit tests and the tests that run the same rules through
Prometheus' own promtool and a real Prometheus; PROMETHEUS_CASES are the
cases of Prometheus' TestRelabel (model/relabel/relabel_test.go).
"""

from __future__ import annotations

from typing import Any

DROPPED = None

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

# Each rule Prometheus' Validate (or its YAML reading) refuses, and the key we name.
REFUSED: list[tuple[dict[str, Any], str]] = [
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
    # Prometheus' TestRelabelValidate and TestTargetLabelValidity (relabel_test.go).
    ({}, "target_label: required for action replace"),
    ({"action": "lowercase"}, "target_label: required for action lowercase"),
    ({"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "target_label": "-${3}"},
     "target_label: not a valid label name or template"),
    *(({"source_labels": ["a"], "target_label": label}, "target_label: not a valid label name")
      for label in ("-label", "$", "${}", "foo${", "-foo${1}bar-")),
]  # fmt: skip

# Rules 2.42 takes and we refuse, as later Prometheus versions do (TestRelabelValidate):
# 2.42 would set a label literally named `${3}`.
STRICTER: list[tuple[dict[str, Any], str]] = [
    ({"source_labels": ["a"], "action": "lowercase", "target_label": "${3}"},
     "target_label: not a valid label name: '${3}'"),
    ({"source_labels": ["a"], "action": "uppercase", "target_label": "x$1"},
     "target_label: not a valid label name: 'x$1'"),
]  # fmt: skip

ACCEPTED: list[dict[str, Any]] = [
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
    # Target labels Prometheus' TestTargetLabelValidity and TestRelabelValidate accept.
    *({"source_labels": ["a"], "regex": "some-([^-]+)-([^,]+)", "target_label": label}
      for label in ("label", "label${1}", "${1}label", "${1}", "$1", "asd$2asd", "_${1}_",
                    "foo${bar}foo", "${3}")),
]  # fmt: skip

# Regexes RE2 (Go 1.19, Prometheus 2.42's) refuses; each is refused here too.
RE2_REFUSED = [
    "(?=a)", "(?!a)", "(?<=a)b", "(?<!a)b", "(a)\\1", "\\8", "(?P<n>a)(?P=n)", "a++", "a*+",
    "(?>a)", "(?<n>a)", "(?#c)", "a{1001}", "a{2}{3}", "a**", "\\Z", "\\q", "\\C", "(a", "a)",
    "[a", "*a", "[z-a]", "(?x)a", "(?i-)a",
]  # fmt: skip

# Regexes RE2 accepts whose Python spelling differs; each is accepted here too.
RE2_ACCEPTED = [
    "x{,3}", "\\z", "(?U)a+", "[[:alpha:]]", "[[:^digit:]]", "\\Qa.b\\E", "\\x{41}", "\\101",
    "(?i)a(?-i)b", "[\\d-z]", "(?s-m:a)", "a{1000}", "[\\D\\w]", "(?m)^a$",
    "^*a", "a\\z?", "(?m)$+",
]  # fmt: skip

# (regex, values): how Go's regexp matches and captures, for a real Prometheus to confirm.
REGEX_CASES: list[tuple[str, list[str]]] = [
    ("(?i)foo", ["FOO", "fOo", "foox"]),
    ("a(?i)b|c", ["aB", "C", "Ab", "c"]),
    ("(fo)\\z", ["fo", "fo\n"]),
    ("(foo)$", ["foo", "foo\n"]),
    ("(?m)(foo)$\\n?", ["foo\n", "foo"]),
    ("\\d+", ["123", "\u0663", "12a"]),
    ("\\w+", ["abc_1", "\u00e9", "a-b"]),
    ("\\s", [" ", "\t", "\v", "\u00a0"]),
    ("x{,3}", ["x{,3}", "xxx"]),
    ("[[:upper:]][[:^digit:]]", ["A1", "Ab", "a_"]),
    ("(?U)(a+)(a*)", ["aaa"]),
    ("(a|ab)(c|bcd)(d*)", ["abcd"]),
    ("(?P<name>[a-z]+)-(\\d+)", ["abc-12"]),
    ("\\Qa.b\\E(.)", ["a.bc", "axbc"]),
    ("\\x{41}\\101", ["AA"]),
    ("(.)", ["\n", "a"]),
    ("(?s)(.)", ["\n"]),
    ("[^a]", ["\n", "b", "a"]),
    ("\\bfoo\\b.*", ["foo bar", "foobar"]),
    ("(?i)stra\u00dfe", ["STRASSE", "STRA\u1e9eE", "strasse"]),
    ("(?i)k", ["K", "\u212a"]),
    ("a.c", ["a\u00e9c", "ae\u0301c"]),
    ("(a*)+", ["b", ""]),
    ("(a*)*(b)", ["b"]),
    ("^*(a)$*", ["a"]),
]
# Shows every group: numbered, named, whole, out of range, and Go's longest-name rule.
REGEX_TEMPLATE = "<$0|$1|${2}|$3|$name|${name}x|$namex|$$>"
