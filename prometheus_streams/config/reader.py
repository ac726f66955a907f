"""Walking raw YAML: a section knows its key path, so each key is named once in the rules."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Reader:
    """Collects every problem and warning of one file, each with its key path; never raises."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, key: str, message: str) -> None:
        """Record what is wrong at `key` (a full key path)."""
        self.problems.append(f"{self.path}: {key}: {message}")

    def warn(self, key: str, message: str) -> None:
        """Record what is legal but probably not meant at `key` (a full key path)."""
        self.warnings.append(f"{self.path}: {key}: {message}")

    def root(self, raw: object) -> Section | None:
        """The whole document as a section, or None (with a problem) if it is no mapping."""
        data = self.mapping(raw, "(top level)")
        return None if data is None else Section(self, data, "")

    def mapping(self, value: object, key: str) -> dict[str, Any] | None:
        """`value` as a mapping with string keys; None (with a problem) if it is none."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"must be a mapping, got {type(value).__name__}")
            return None
        bad = [k for k in value if not isinstance(k, str)]
        for k in bad:
            self.problem(key, f"keys must be strings, got {k!r}")
        return {k: v for k, v in value.items() if isinstance(k, str)}


class Section:
    """One mapping of the YAML at key path `where` ("" for the top level)."""

    def __init__(self, reader: Reader, data: Mapping[str, Any], where: str) -> None:
        self.reader = reader
        self.data = data
        self.where = where

    def path(self, key: str | None = None) -> str:
        """The full key path of `key` in this section, or of the section itself."""
        if key is None:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def given(self, key: str) -> bool:
        """Whether `key` is there with a value (an empty `key:` counts as not given)."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> object:
        """The unconverted value of `key`, None when absent."""
        return self.data.get(key)

    def problem(self, key: str | None, message: str) -> None:
        """Record what is wrong at `key` (None: the section itself)."""
        self.reader.problem(self.path(key), message)

    def warn(self, key: str | None, message: str) -> None:
        """Record a warning at `key` (None: the section itself)."""
        self.reader.warn(self.path(key), message)

    def check_keys(self, known: set[str], obsolete: Mapping[str, str] | None = None) -> None:
        """Warn about obsolete keys; reject unknown ones, suggesting the closest known key."""
        obsolete = obsolete or {}
        for key in self.data:
            if key in known:
                continue
            if key in obsolete:
                self.warn(key, f"ignored: {obsolete[key]}")
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            self.problem(key, f"unknown key{hint}")

    def get(self, key: str, convert: Callable[[object], T], default: T) -> T:
        """`key` converted, or `default` when absent, empty or wrong (with a problem)."""
        if key not in self.data or self.data[key] is None:
            return default
        try:
            return convert(self.data[key])
        except (ValueError, TypeError) as exc:
            self.problem(key, str(exc))
            return default

    def mapping(self, key: str) -> Section | None:
        """The nested mapping at `key` (empty when absent); None (with a problem) if no mapping."""
        return self._child(self.data.get(key), self.path(key))

    def entries(self, key: str) -> Iterator[Section]:
        """The mappings in the list at `key`; items that are no mapping get a problem."""
        items = self.data.get(key)
        assert isinstance(items, list)
        for index, item in enumerate(items):
            section = self._child(item, f"{self.path(key)}[{index}]")
            if section is not None:
                yield section

    def _child(self, value: object, where: str) -> Section | None:
        data = self.reader.mapping(value, where)
        return None if data is None else Section(self.reader, data, where)
