"""Relabelling with Prometheus 2.42's semantics: every action, RE2 regexes, Go's `$1` templates."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_streams.re2 import RE2Error, compile_anchored

__all__ = [
    "ACTIONS",
    "DEFAULT_REGEX",
    "RE2Error",
    "RelabelConfig",
    "compile_regex",
    "relabel",
    "valid_label_name",
]

ACTIONS = (
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Go's Expand: `$$`, `${name}` or `$name` (name as long as possible: letters, digits, _).
_TEMPLATE_REF = re.compile(r"\$(?:(\$)|\{(\w+)\}|(\w+))")


def compile_regex(pattern: str) -> re.Pattern[str]:
    """An RE2 pattern compiled to match whole values only; RE2Error if RE2 would refuse it."""
    return compile_anchored(pattern)


def valid_label_name(name: str) -> bool:
    """Whether `name` is a Prometheus (2.42) label name."""
    return _LABEL_NAME.fullmatch(name) is not None


DEFAULT_REGEX = compile_regex("(.*)")

# A regex that is a plain name or an alternation of plain names: a set lookup does.
_LITERALS = re.compile(r"[A-Za-z0-9_:]+(?:\|[A-Za-z0-9_:]+)*")
_SEEN_MAX = 4096

# A compiled template: literal text and group numbers (-1: a group the regex does not have).
_Parts = tuple[str | int, ...]


def _compile_template(template: str, regex: re.Pattern[str]) -> _Parts:
    parts: list[str | int] = []
    last = 0
    for match in _TEMPLATE_REF.finditer(template):
        parts.append(template[last : match.start()])
        last = match.end()
        dollar, braced, bare = match.groups()
        if dollar:
            parts.append("$")
            continue
        name = braced or bare
        if name.isdigit() and name.isascii() and (name == "0" or not name.startswith("0")):
            number = int(name)
            parts.append(number if number <= regex.groups else -1)
        else:
            parts.append(regex.groupindex.get(name, -1))
    parts.append(template[last:])
    # Merged literals; an unknown group expands to nothing, as in Go.
    merged: list[str | int] = []
    for part in parts:
        if part == "" or part == -1:
            continue
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return tuple(merged)


def _expand(parts: _Parts, match: re.Match[str]) -> str:
    if len(parts) == 1:
        only = parts[0]
        return only if isinstance(only, str) else match.group(only) or ""
    return "".join(p if isinstance(p, str) else match.group(p) or "" for p in parts)


@dataclass(frozen=True)
class RelabelConfig:
    """One relabelling rule, as Prometheus' `relabel_configs` entries (already validated)."""

    source_labels: tuple[str, ...] = ()
    separator: str = ";"
    target_label: str = ""
    regex: re.Pattern[str] = DEFAULT_REGEX
    modulus: int = 0
    replacement: str = "$1"
    action: str = "replace"
    _target: _Parts = field(init=False, repr=False, compare=False)
    _replacement: _Parts = field(init=False, repr=False, compare=False)
    _literals: frozenset[str] | None = field(init=False, repr=False, compare=False)
    _seen: dict[str, bool | tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once here: relabel() runs per sample.
        object.__setattr__(self, "_target", _compile_template(self.target_label, self.regex))
        object.__setattr__(self, "_replacement", _compile_template(self.replacement, self.regex))
        literal = _LITERALS.fullmatch(self.regex.pattern)
        words = frozenset(self.regex.pattern.split("|")) if literal else None
        object.__setattr__(self, "_literals", words)
        # Outcomes by value: label names and most values repeat from sample to sample.
        object.__setattr__(self, "_seen", {})

    def matches(self, value: str) -> bool:
        """Whether the regex matches all of `value`."""
        if self._literals is not None:
            return value in self._literals
        seen = self._seen
        hit = seen.get(value)
        if hit is None:
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            hit = seen[value] = self.regex.fullmatch(value) is not None
        return bool(hit)

    def replaced(self, value: str) -> tuple[str, str] | None:
        """What `replace` does with `value`: None (no match) or (label, value); "" deletes."""
        seen = self._seen
        hit = seen.get(value)
        if hit is None:
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            hit = seen[value] = self._replace(value)
        return None if isinstance(hit, bool) else hit

    def _replace(self, value: str) -> bool | tuple[str, str]:
        match = self.regex.fullmatch(value)
        if match is None:
            return False
        target = _expand(self._target, match)
        result = _expand(self._replacement, match)
        if not valid_label_name(target) or not result:
            # 2.42 deletes the label named as written, not as expanded.
            return (self.target_label, "")
        return (target, result)


def relabel(labels: dict[str, str], configs: Sequence[RelabelConfig]) -> dict[str, str] | None:
    """`labels` after `configs` in order, or None when a rule drops them.

    `labels` is never modified; when no rule changes anything the result is
    `labels` itself, so a caller must not modify the result either. An empty
    value stands for an absent label, as in Prometheus: setting one deletes.
    """
    current = labels
    owned = False
    for config in configs:
        action = config.action
        sources = config.source_labels
        if len(sources) == 1:
            value = current.get(sources[0], "")
        else:
            value = config.separator.join([current.get(name, "") for name in sources])
        if action == "drop":
            if config.matches(value):
                return None
        elif action == "keep":
            if not config.matches(value):
                return None
        elif action == "replace":
            change = config.replaced(value)
            if change is None:
                continue
            name, result = change
            if current.get(name, "") == result:
                continue
            if not owned:
                current, owned = dict(current), True
            if result:
                current[name] = result
            else:
                del current[name]
        elif action == "labeldrop" or action == "labelkeep":
            literals = config._literals
            if action == "labelkeep":
                doomed = [n for n in current if not config.matches(n)]
            elif literals is not None:
                doomed = [n for n in literals if n in current]
            else:
                doomed = [n for n in current if config.matches(n)]
            if doomed:
                if not owned:
                    current, owned = dict(current), True
                for name in doomed:
                    del current[name]
        elif action == "keepequal":
            if current.get(config.target_label, "") != value:
                return None
        elif action == "dropequal":
            if current.get(config.target_label, "") == value:
                return None
        else:
            if not owned:
                current, owned = dict(current), True
            _rewrite(current, config, value)
    return current


def _rewrite(labels: dict[str, str], config: RelabelConfig, value: str) -> None:
    """The actions that set labels from others, rare enough per sample to leave the hot loop."""
    action = config.action
    if action == "labelmap":
        # Go walks the labels as they were before this rule, sorted by name.
        for name, label_value in sorted(labels.items()):
            match = config.regex.fullmatch(name)
            if match is not None:
                _set(labels, _expand(config._replacement, match), label_value)
        return
    if action == "hashmod":
        digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
        result = str(int.from_bytes(digest[8:], "big") % config.modulus)
    elif action == "lowercase":
        result = _go_case(value, str.lower)
    elif action == "uppercase":
        result = _go_case(value, str.upper)
    else:
        raise ValueError(f"unknown relabel action {action!r}")
    _set(labels, config.target_label, result)


def _go_case(value: str, change: Callable[[str], str]) -> str:
    changed = change(value)
    if value.isascii():
        return changed
    # Go maps rune by rune (simple case mapping): where Python's full mapping
    # gives several characters, Go keeps the character, except İ, lowered to i.
    return "".join(
        "i" if c == "\u0130" and change is str.lower else c if len(change(c)) != 1 else change(c)
        for c in value
    )


def _set(labels: dict[str, str], name: str, value: str) -> None:
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)
