"""`generalize_date`: truncates a date or timestamp to its `day`, `month` or `year`, keeping its type.

Datetimes stay datetimes (midnight of the first day of the unit, same time zone), dates stay dates, and
ISO-8601 text stays ISO text in its own spelling (so it fits its column); text that is not a date becomes NULL.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, OperatorError, Params, dialect_name, map_values

Unit = Literal["day", "month", "year"]
_PERIOD = {"month": "M", "year": "Y"}
_DIGIT = re.compile(r"[0-9]")
_SQLITE_FORMAT = {"day": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y-01-01"}


class GeneralizeDateParams(Params):
    unit: Unit


def _truncate(value: dt.date, unit: str) -> dt.date:
    if isinstance(value, dt.datetime):
        value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("month", "year"):
        value = value.replace(day=1)
    if unit == "year":
        value = value.replace(month=1)
    return value


def _truncate_text(value: str, unit: str) -> str | None:
    """ISO text truncated in its own spelling: "2026-01-15 10:00" -> "2026-01-01 00:00" for `month`, the same
    separator, precision and offset, so the result fits wherever the input did (a VARCHAR(16) holding
    minutes, a column of basic-format "20260115T1000"). ISO week and ordinal dates come back in the
    extended form.
    """
    try:
        if len(value) == 10:
            return _truncate(dt.date.fromisoformat(value), unit).isoformat()
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    day = _truncate(parsed.date(), unit)
    for spelled, form in ((parsed.date().isoformat(), "%Y-%m-%d"), (parsed.strftime("%Y%m%d"), "%Y%m%d")):
        if value.startswith(spelled):
            clock = value[len(spelled):]
            zone_at = next((i for i, c in enumerate(clock) if c in "+-Z" and i > 0), len(clock))
            return day.strftime(form) + _DIGIT.sub("0", clock[:zone_at]) + clock[zone_at:]
    return _truncate(parsed, unit).isoformat()


class GeneralizeDate(Operator):
    name = "generalize_date"
    Params = GeneralizeDateParams
    shorthand = "unit"
    kinds = frozenset({"date", "datetime", "text"})
    idempotent = True

    def writes_null(self, kind: str, subject_nullable: bool = True) -> str | None:
        return "writes NULL for an unparseable date" if kind == "text" else None

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        unit = self.params.unit
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            return self._truncate_datetimes(series)
        if isinstance(series.dtype, pd.StringDtype):
            return map_values(series, lambda values: [_truncate_text(v, unit) for v in values])
        present = series.dropna()
        if not len(present):
            return series.copy()
        if all(isinstance(v, str) for v in present):
            return map_values(series, lambda values: [_truncate_text(v, unit) for v in values])
        if all(isinstance(v, dt.datetime) for v in present):
            return self._truncate_datetimes(pd.to_datetime(series))
        if all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present):
            return map_values(series, lambda values: [_truncate(v, unit) for v in values], dtype=object)
        raise OperatorError(f"{self.name}: the column holds values that are not dates, datetimes or ISO text")

    def _truncate_datetimes(self, series: pd.Series) -> pd.Series:
        tz = series.dt.tz
        local = series.dt.tz_localize(None) if tz is not None else series
        if self.params.unit == "day":
            out = local.dt.floor("D")
        else:
            out = local.dt.to_period(_PERIOD[self.params.unit]).dt.to_timestamp().astype(local.dtype)
        if tz is not None:
            out = out.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        return out

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        name = dialect_name(dialect)
        unit = self.params.unit
        if not isinstance(column.type, sa.Date | sa.DateTime):
            return None  # ISO text has many spellings; Python handles it
        if name == "postgresql":
            expr = sa.func.date_trunc(unit, column)
            if isinstance(column.type, sa.DateTime):
                return sa.type_coerce(expr, column.type)
            return sa.cast(expr, sa.Date)
        if name == "sqlite":
            fmt = _SQLITE_FORMAT[unit]
            if isinstance(column.type, sa.DateTime):
                fmt += " 00:00:00.000000"  # SQLAlchemy's storage format for SQLite DATETIME
            return sa.type_coerce(sa.func.strftime(fmt, column), column.type)
        return None
