"""`relabel_configs` and `metric_relabel_configs` lists, validated as Prometheus 2.42 does."""

from __future__ import annotations

import re

from prometheus_streams.config.reader import Section
from prometheus_streams.relabel import (
    ACTIONS,
    DEFAULT_REGEX,
    RE2Error,
    RelabelConfig,
    compile_regex,
    valid_label_name,
)

RELABEL_KEYS = {
    "source_labels",
    "separator",
    "regex",
    "modulus",
    "target_label",
    "replacement",
    "action",
}
# A target_label of `replace` may hold $1-style references (Prometheus' own check).
_TEMPLATE_NAME = re.compile(
    r"(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+"
)
_MAX_MODULUS = 2**64 - 1


def read_relabel_configs(parent: Section, key: str) -> tuple[RelabelConfig, ...]:
    """The relabelling rules at `key`; rules with problems are left out (the problems say why)."""
    if not parent.given(key):
        return ()
    if not isinstance(parent.raw(key), list):
        parent.problem(key, "must be a list of rules (- source_labels: [...] ...)")
        return ()
    rules: list[RelabelConfig] = []
    for s in parent.entries(key):
        problems = len(s.reader.problems)
        rule = _read_rule(s)
        if rule is not None and len(s.reader.problems) == problems:
            rules.append(rule)
    return tuple(rules)


def _text(s: Section, key: str) -> str | None:
    """A string key as Go's YAML reads it: an explicit null is "", a number its text."""
    value = s.raw(key)
    if value is None:
        return ""
    if isinstance(value, bool | float):
        # YAML turned the text into a value (yes, 0.50): Prometheus keeps the text as written.
        text = str(value).lower() if isinstance(value, bool) else str(value)
        s.warn(key, f"read as {text!r}; quote the value to be sure of its text")
        return text
    if isinstance(value, str | int):
        return str(value)
    s.problem(key, f"must be a string, got {type(value).__name__}")
    return None


def _read_rule(s: Section) -> RelabelConfig | None:
    s.check_keys(RELABEL_KEYS)
    action = "replace"
    if "action" in s:
        text = _text(s, "action")
        if text is None:
            return None
        action = text.lower()
        if not action:
            s.problem("action", "must not be empty")
            return None
        if action not in ACTIONS:
            s.problem("action", f"unknown relabel action {text!r}; one of {', '.join(ACTIONS)}")
            return None
    sources = _source_labels(s)
    separator = _text(s, "separator") if "separator" in s else ";"
    target = _text(s, "target_label") if "target_label" in s else ""
    replacement = _text(s, "replacement") if "replacement" in s else "$1"
    modulus = _modulus(s)
    regex = _regex(s)
    if None in (sources, separator, target, replacement, modulus, regex):
        return None
    assert sources is not None and separator is not None and target is not None
    assert replacement is not None and modulus is not None and regex is not None
    _validate(s, action, sources, separator, target, replacement, modulus)
    return RelabelConfig(
        source_labels=sources,
        separator=separator,
        target_label=target,
        regex=regex,
        modulus=modulus,
        replacement=replacement,
        action=action,
    )


def _source_labels(s: Section) -> tuple[str, ...] | None:
    value = s.raw("source_labels")
    if value is None:
        return ()
    if not isinstance(value, list):
        s.problem("source_labels", f"must be a list of label names, got {value!r}")
        return None
    for index, name in enumerate(value):
        if not isinstance(name, str) or not valid_label_name(name):
            s.problem(f"source_labels[{index}]", f"not a valid label name: {name!r}")
            return None
    return tuple(value)


def _modulus(s: Section) -> int | None:
    value = s.raw("modulus")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MODULUS:
        s.problem("modulus", f"must be a whole number from 1 to 2^64-1, got {value!r}")
        return None
    return value


def _regex(s: Section) -> re.Pattern[str] | None:
    if "regex" not in s:
        return DEFAULT_REGEX
    text = _text(s, "regex")  # `regex:` with no value is the empty regex, as in Prometheus
    if text is None:
        return None
    try:
        return compile_regex(text)
    except RE2Error as exc:
        s.problem("regex", str(exc))
        return None


def _validate(
    s: Section,
    action: str,
    sources: tuple[str, ...],
    separator: str,
    target: str,
    replacement: str,
    modulus: int,
) -> None:
    """What Prometheus' Config.Validate refuses, each at the key that is wrong."""
    if action == "hashmod" and modulus == 0:
        s.problem("modulus", "required (greater than zero) for action hashmod")
    needs_target = ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal")
    if action in needs_target:
        if not target:
            s.problem("target_label", f"required for action {action}")
        elif action == "replace" and "$" in target:
            if not _TEMPLATE_NAME.fullmatch(target):
                s.problem("target_label", f"not a valid label name or template: {target!r}")
        elif not valid_label_name(target):
            s.problem("target_label", f"not a valid label name: {target!r}")
    if action in ("lowercase", "uppercase", "keepequal", "dropequal") and replacement != "$1":
        s.problem("replacement", f"not allowed for action {action}")
    if action == "labelmap" and not _TEMPLATE_NAME.fullmatch(replacement):
        s.problem("replacement", f"not a valid label name or template: {replacement!r}")
    if action in ("keepequal", "dropequal"):
        # Prometheus refuses any regex given, even the default one.
        if "regex" in s:
            s.problem(
                "regex", f"not allowed for action {action} (only source_labels, target_label)"
            )
        if modulus:
            s.problem(
                "modulus", f"not allowed for action {action} (only source_labels, target_label)"
            )
        if separator != ";":
            s.problem(
                "separator", f"not allowed for action {action} (only source_labels, target_label)"
            )
    if action in ("labeldrop", "labelkeep"):
        if s.raw("source_labels") is not None:
            s.problem("source_labels", f"not allowed for action {action} (only regex)")
        for key, value, default in (
            ("target_label", target, ""),
            ("modulus", modulus, 0),
            ("separator", separator, ";"),
            ("replacement", replacement, "$1"),
        ):
            if value != default:
                s.problem(key, f"not allowed for action {action} (only regex)")
