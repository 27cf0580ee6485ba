"""Comparing a stored timestamp with a cutoff instant, the same way on every dialect and column type."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pipelines.store import column_kind

# The text prefilter's bound lies two days past the cutoff: past this day it would be after 9999-12-31,
# which Python cannot represent (a run as of 9999-12-31 failed with OverflowError); no prefilter then.
_LAST_PREFILTERED = dt.date.max - dt.timedelta(days=2)


def at_or_before(column: sa.Column, cutoff: dt.datetime, dialect: str) -> sa.ColumnElement[bool]:
    """NULL-safe `column <= cutoff`: FALSE, never NULL, for a NULL column (so NOT(...) stays sound)."""
    return sa.and_(column.is_not(None), _compare(column, cutoff, dialect))


def _compare(column: sa.Column, cutoff: dt.datetime, dialect: str) -> sa.ColumnElement[bool]:
    """`column <= cutoff` (cutoff is an aware UTC instant); NULL and unparseable values are never due.

    SQLite stores timestamps as text in several shapes ('2026-01-01 00:00:00', ISO with 'T', with a zone
    offset): julianday() reads them all as instants. A plain text prefilter two days past the cutoff
    keeps the index usable for the common ISO shapes, since no zone offset exceeds 14 hours.
    """
    kind = column_kind(column)
    naive = cutoff.astimezone(dt.UTC).replace(tzinfo=None)
    if dialect == "sqlite":
        exact = _sqlite_at_or_before(column, naive.strftime("%Y-%m-%d %H:%M:%S"))
        if kind in ("datetime", "date", "text") and naive.date() < _LAST_PREFILTERED:
            upper = (naive + dt.timedelta(days=2)).strftime("%Y-%m-%d")
            return sa.and_(sa.type_coerce(column, sa.Text) < upper, exact)
        return exact
    if kind == "date":
        # A date is the instant of its midnight: due when that midnight is at or before the cutoff.
        return column <= naive.date() if naive.time() == dt.time() else column < naive.date() + dt.timedelta(1)
    if kind == "datetime" and getattr(column.type, "timezone", False):
        return column <= cutoff
    return column <= naive


def _sqlite_at_or_before(column: sa.Column, cutoff: str) -> sa.ColumnElement[bool]:
    """`column <= cutoff` (a whole second) on SQLite, to the microsecond.

    julianday() rounds to the millisecond: '... 00:00:00.0003' compared equal to the cutoff and fell due
    before its time. Only such a tie is looked at again: due when the value's
    whole seconds are before the cutoff (it was rounded up), or its fraction of a second is all zeros.
    """
    at = sa.func.julianday(cutoff)
    text = sa.cast(column, sa.Text)
    dot = sa.func.instr(text, ".")
    fraction_on = sa.func.substr(text, dot + 1)  # the digits after the dot, then any zone
    zone = sa.func.ltrim(fraction_on, "0123456789")
    digits = sa.func.substr(fraction_on, 1, sa.func.length(fraction_on) - sa.func.length(zone))
    seconds = sa.func.substr(text, 1, dot - 1).op("||")(zone)
    tie = sa.or_(dot == 0, sa.func.rtrim(digits, "0") == "", sa.func.julianday(seconds) < at)
    # CASE: julianday() runs once for a row before the cutoff (most rows the prefilter lets through), and the
    # tie's text work only on a tie (inside a CASE, SQLite evaluates both sides of an AND or OR)
    before = sa.func.julianday(column)
    return sa.case((before < at, sa.true()), (before == at, tie), else_=sa.false())


def as_utc(value: object) -> dt.datetime | None:
    """A stored timestamp as Python read it (datetime, date or ISO text; no zone = UTC) as an aware UTC
    datetime; None for NULL or anything else.
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return None
