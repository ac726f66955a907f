"""The project's error types."""

from __future__ import annotations

# Exit codes of the command: done, failed, bad usage or config.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class ConfigError(Exception):
    """A configuration that cannot be used; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StreamMismatchError(Exception):
    """The JetStream stream exists but cannot serve this configuration."""
