"""The error types a user can act on, each mapped to one CLI exit code."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("lethe.run")


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


class UnreachableError(InputError):
    """The store or vault did not answer. Bad input to the CLI (exit 2, nothing touched); a DAG task
    retries it, since a database restarting at 3 a.m. answers again.
    """


class LockHeldError(LetheError):
    """Another run holds the store (runs never overlap on one store)."""

    exit_code = 3


class LockLostError(LetheError):
    """Another run took the store over while this one was working (it looked dead: no heartbeat for
    `lock.STALE_AFTER`). This run stops at once, between chunks; what it committed stays done.
    """

    exit_code = 3


class RunFailedError(LetheError):
    """A step failed part-way; the message names the table and the step."""

    exit_code = 3


class StepFailedError(LetheError):
    """A step failed on an error Lethe did not raise itself (a database error, mostly). The message names
    the step, the table, and what can be said of the error without its text (`describe`).
    """

    exit_code = 3

    def __init__(self, step: str, table: str | None, error: BaseException):
        self.step, self.table, self.kind = step, table, describe(error)
        self.transient = is_transient(error)
        where = f"{step} of table {table}" if table else step
        super().__init__(f"{where} failed: {self.kind}")


# SQLSTATE classes a retry may clear: connection exception, transaction rollback (deadlock, serialization
# failure), insufficient resources, operator intervention (shutdown, cancel); and lock_not_available.
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57", "55P03")
_TRANSIENT_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL")


def _driver_error(error: BaseException) -> tuple[BaseException, str | None, str | None]:
    """The driver's own exception (SQLAlchemy wraps it), its SQLSTATE (PostgreSQL) and SQLite error name."""
    orig = getattr(error, "orig", None) or error
    return orig, getattr(orig, "sqlstate", None), getattr(orig, "sqlite_errorname", None)


def is_transient(error: BaseException) -> bool:
    """Whether retrying the step may succeed. A constraint or data error (SQLSTATE classes 22, 23) recurs on
    every attempt until someone changes the schema or the policy; an error without a code (a dropped
    connection, an unknown driver) is given the benefit of the doubt.
    """
    _, sqlstate, sqlite_name = _driver_error(error)
    if sqlstate:
        return sqlstate.startswith(_TRANSIENT_SQLSTATE)
    if sqlite_name:
        return sqlite_name.startswith(_TRANSIENT_SQLITE)
    return True


def describe(error: BaseException) -> str:
    """The error's type and, from the driver's diagnostics, its SQLSTATE or SQLite error name and the
    constraint, table and column it names: schema names, never values. Never the message itself: a
    database quotes the offending row in it ("Failing row contains (...)", "Key (email)=(...)").
    """
    orig, sqlstate, sqlite_name = _driver_error(error)
    parts = [f"SQLSTATE {sqlstate}"] if sqlstate else [sqlite_name] if sqlite_name else []
    diag = getattr(orig, "diag", None)
    for label, attr in (("constraint", "constraint_name"), ("table", "table_name"), ("column", "column_name")):
        name = getattr(diag, attr, None) if diag is not None else None
        if name:
            parts.append(f'{label} "{name}"')
    return type(orig).__name__ + (f" ({', '.join(parts)})" if parts else "")


@contextlib.contextmanager
def step(name: str, table: str | None = None) -> Iterator[None]:
    """Run a step's body so that any error Lethe did not raise itself leaves as a StepFailedError, its
    original detached (`from None`): a traceback printed anywhere, such as an Airflow task log, then
    carries no value from the data. Where in the code it failed is logged as file, line and function.
    """
    try:
        yield
    except LetheError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised, described without its text
        failed = StepFailedError(name, table, exc)
        log.error("%s; raised at %s", failed, _where(exc))
        raise failed from None


_PROJECT = Path(__file__).resolve().parents[1]
_PACKAGES = {"pipelines", "anonymizers", "expectations", "dags"}


def _where(error: BaseException) -> str:
    """The innermost frames in Lethe's own packages, as path:line function (code locations, no values)."""
    def ours(filename: str) -> Path | None:
        path = Path(filename).resolve()
        if path.is_relative_to(_PROJECT) and path.relative_to(_PROJECT).parts[0] in _PACKAGES:
            return path.relative_to(_PROJECT)
        return None

    frames = [(ours(f.filename), f) for f in traceback.extract_tb(error.__traceback__)]
    mine = [f"{path}:{f.lineno} {f.name}" for path, f in frames if path is not None]
    return " <- ".join(reversed(mine[-4:]))
