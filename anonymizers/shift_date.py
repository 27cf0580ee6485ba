"""`shift_date`: moves dates by a keyed per-subject offset of 1..`max_days` days, either direction.

All dates of one subject move together, so intervals between a subject's events survive while the
calendar dates do not. A row with no subject gets NULL: there is no key to shift it by. A shift stops at
the ends of the calendar Python can hold (0001-01-01, 9999-12-31): a "valid until 9999-12-31" moved past
them failed every chunk of the table (OverflowError), or, in PostgreSQL, wrote a year 10000 no Python
client can read; PostgreSQL's infinity stays infinity.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import (
    Hmac,
    Operator,
    OperatorError,
    Params,
    as_text,
    dialect_name,
    integral_series,
    pg_hmac_int63,
)


def _shift_day(day: dt.date, days: int) -> dt.date:
    """`day` moved by `days`, stopping at 0001-01-01 and 9999-12-31."""
    ordinal = min(max(day.toordinal() + days, dt.date.min.toordinal()), dt.date.max.toordinal())
    return dt.date.fromordinal(ordinal)


class ShiftDateParams(Params):
    max_days: int = Field(ge=1, le=36_500)


class ShiftDate(Operator):
    name = "shift_date"
    Params = ShiftDateParams
    shorthand = "max_days"
    kinds = frozenset({"date", "datetime"})
    needs_subject = True

    def writes_null(self, kind: str, subject_nullable: bool = True) -> str | None:
        return "writes NULL for a row without a subject" if subject_nullable else None
    needs_key = True

    def _setup(self) -> None:
        self._key = self.ctx.subkey(self.name, "shift_date")
        self._hmac = Hmac(self._key)

    def offset_days(self, subjects: pd.Series) -> np.ndarray:
        """The shift of each row's subject in whole days (never 0); NaN where there is no subject."""
        m = self.params.max_days
        ints = integral_series(subjects)
        keys = ints if ints is not None else as_text(subjects)
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
        r = self._hmac.int63([str(v) for v in uniques.tolist()]) % (2 * m)
        per_subject = np.where(r < m, r - m, r - m + 1).astype("float64")  # [0, 2m) -> [-m, -1] u [1, m]
        return np.where(codes >= 0, per_subject[np.maximum(codes, 0)] if len(per_subject) else 0, np.nan)

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        if subjects is None or len(subjects) != len(series):
            raise OperatorError(f"{self.name}: needs the subject column, one subject per value")
        days = self.offset_days(subjects)
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            series = series.dt.as_unit("us")  # nanoseconds end in 2262; microseconds outlast Python's calendar
            tz = series.dt.tz
            first, last = (pd.Timestamp(t).tz_localize(tz) for t in (dt.datetime.min, dt.datetime.max))
            return (series + pd.to_timedelta(days, unit="D")).clip(first, last)
        present = series.dropna()
        if all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present):
            values = series.to_numpy(dtype=object)
            out = [None if v is None or pd.isna(v) or np.isnan(d) else _shift_day(v, int(d))
                   for v, d in zip(values, days, strict=True)]
            return pd.Series(out, index=series.index, name=series.name, dtype=object)
        if all(isinstance(v, dt.datetime) for v in present):
            if any(v.tzinfo is not None for v in present):
                # Text timestamps on SQLite may mix offsets and no offset (UTC): one instant each, in UTC,
                # where pandas refuses to mix them.
                series = series.map(lambda v: v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v,
                                    na_action="ignore")
                return self.apply(pd.to_datetime(series, utc=True), subjects)
            return self.apply(pd.to_datetime(series), subjects)
        raise OperatorError(f"{self.name}: the column holds values that are not dates or datetimes")

    def sql(self, column: ColumnElement, dialect, subject: ColumnElement | None = None
            ) -> ColumnElement | None:
        if dialect_name(dialect) != "postgresql" or subject is None:
            return None
        if not isinstance(column.type, sa.Date | sa.DateTime):
            return None
        m = self.params.max_days
        r = pg_hmac_int63(sa.cast(subject, sa.Text), self._key) % (2 * m)
        days = sa.case((r < m, r - m), else_=r - m + 1)
        if isinstance(column.type, sa.DateTime):
            # hours, not days: a day interval follows the session's DST rules, pandas adds 24 h
            shifted = column + sa.func.make_interval(0, 0, 0, 0, sa.cast(days * 24, sa.Integer))
            zone = dt.UTC if getattr(column.type, "timezone", False) else None
            first, last = (t.replace(tzinfo=zone) for t in (dt.datetime.min, dt.datetime.max))
        else:
            shifted = column + sa.cast(days, sa.Integer)
            first, last = dt.date.min, dt.date.max
        within = sa.func.least(sa.func.greatest(shifted, sa.literal(first, column.type)), sa.literal(last, column.type))
        # GREATEST and LEAST skip NULLs: a row without a subject is NULL here, not 0001-01-01
        return sa.type_coerce(sa.case((subject.is_(None), sa.null()), (sa.func.isfinite(column), within),
                                      else_=column), column.type)
