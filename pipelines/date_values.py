"""Date and timestamp values Python cannot hold, read as they are stored and written back unchanged.

SQLite keeps whatever a DATE or DATETIME column is given; PostgreSQL has `infinity` and `-infinity`. Reading
either through SQLAlchemy and psycopg's date types raised in the middle of a run (a held row's move to the
vault, the report's list of deleted subjects), failing that run and every next one.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

_INFINITE = (b"infinity", b"-infinity")


class _AsStoredWhenUnparsed:
    """A SQLite date or timestamp type read as Python's date or datetime where SQLAlchemy can parse the value,
    and as stored where it cannot; such a value is written back as it came.

    SQLite keeps whatever it is given: a DATE column holding '2026-01-15 10:00:00', a Unix time or '' in a
    DATETIME column raised ValueError in every read of the row (a held row's move to the vault, the report's
    list of deleted subjects), failing each run part-way.
    """

    cache_ok = True

    def bind_processor(self, dialect):
        typed = super().bind_processor(dialect)
        return lambda value: value if isinstance(value, str | int | float) else typed(value)

    def result_processor(self, dialect, coltype):
        typed = super().result_processor(dialect, coltype)

        def process(value):
            try:
                return typed(value)
            except (ValueError, TypeError):
                return value
        return process

    def adapt(self, cls, **kw):
        # pysqlite's own flavour of DATE or DATETIME would replace this type, and its processors, with its own
        return super().adapt(type(self) if issubclass(cls, self.sqlite_type) else cls, **kw)


class LenientSqliteDateTime(_AsStoredWhenUnparsed, sqlite.DATETIME):
    """SQLite's DATETIME or TIMESTAMP, see `_AsStoredWhenUnparsed`."""

    sqlite_type = sqlite.DATETIME


class LenientSqliteTimestamp(LenientSqliteDateTime):
    """A column declared TIMESTAMP keeps that name (in messages, in the vault's copy of its table)."""

    __visit_name__ = "TIMESTAMP"


class LenientSqliteDate(_AsStoredWhenUnparsed, sqlite.DATE):
    """SQLite's DATE, see `_AsStoredWhenUnparsed`."""

    sqlite_type = sqlite.DATE


def lenient_sqlite_dates(_inspector, _table, column_info: dict) -> None:
    """column_reflect hook: SQLite's date and timestamp columns get the lenient types above."""
    declared = column_info["type"]
    if isinstance(declared, sa.TIMESTAMP):
        column_info["type"] = LenientSqliteTimestamp()
    elif isinstance(declared, sa.DateTime):
        column_info["type"] = LenientSqliteDateTime()
    elif isinstance(declared, sa.Date):
        column_info["type"] = LenientSqliteDate()


def infinity_as_text(dbapi_conn) -> None:
    """On a psycopg connection: read PostgreSQL's infinite dates and timestamps as the text 'infinity' and
    '-infinity' (which PostgreSQL reads back into the column) instead of raising DataError; others as usual.
    """
    adapters = getattr(dbapi_conn, "adapters", None)
    if adapters is None:
        return  # not psycopg 3 (psycopg2 reads infinity as date.max itself)
    from psycopg.pq import Format

    for name in ("date", "timestamp", "timestamptz"):
        oid = adapters.types[name].oid
        typed = adapters.get_loader(oid, Format.TEXT)
        if typed is None or getattr(typed, "infinity_as_text", False):
            continue
        adapters.register_loader(oid, _infinity_loader(typed))


def _infinity_loader(typed: type) -> type:
    from psycopg.adapt import Loader

    class InfinityAsText(Loader):
        infinity_as_text = True

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._typed = typed(oid, context)

        def load(self, data):
            return bytes(data).decode() if bytes(data) in _INFINITE else self._typed.load(data)

    return InfinityAsText
