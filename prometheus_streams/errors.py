"""The project's error types."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration that cannot be used; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StreamMismatchError(Exception):
    """The JetStream stream exists but cannot serve this configuration."""
