"""The error types a user can act on, each mapped to one CLI exit code."""

from __future__ import annotations


class LetheError(Exception):
    """Base of every error Lethe raises on purpose. Messages never carry personal values."""

    exit_code = 3


class InputError(LetheError):
    """Bad policy, argument, key or hold: rejected before any data is touched (exit 2)."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return head + self.problems[0]
        lines = [f"{head}{len(self.problems)} problems:"] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class PolicyError(InputError):
    """The policy file is invalid; `problems` lists every mistake with its path in the file."""


class LockHeldError(LetheError):
    """Another run holds the store (runs never overlap on one store)."""

    exit_code = 3


class RunFailedError(LetheError):
    """A step failed part-way; the message names the table and the step."""

    exit_code = 3
