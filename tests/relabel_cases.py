"""Relabel rules Prometheus 2.42 refuses and accepts, and what it refuses them for.

Shared by the config unit tests and the test that runs the same rules
through Prometheus' own promtool.
"""

from __future__ import annotations

from typing import Any

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
