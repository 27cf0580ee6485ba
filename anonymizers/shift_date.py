"""`shift_date`: moves dates by a keyed per-subject offset of 1..`max_days` days, either direction.

All dates of one subject move together, so intervals between a subject's events survive while the
calendar dates do not. A row with no subject gets NULL: there is no key to shift it by.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import (
    Operator,
    OperatorError,
    Params,
    as_text,
    dialect_name,
    hmac_int63,
    integral_series,
    map_values,
    pg_hmac_int63,
)


class ShiftDateParams(Params):
    max_days: int = Field(ge=1, le=36_500)


class ShiftDate(Operator):
    name = "shift_date"
    Params = ShiftDateParams
    shorthand = "max_days"
    kinds = frozenset({"date", "datetime"})
    needs_subject = True
    needs_key = True

    def _setup(self) -> None:
        self._key = self.ctx.subkey(self.name, "shift_date")

    def offset_days(self, subjects: pd.Series) -> pd.Series:
        """The shift of each row's subject in days (never 0), NULL where there is no subject."""
        m = self.params.max_days

        def offsets(values: list) -> list[int]:
            # r in [0, 2m) maps to [-m, -1] and [1, m]
            return [r - m if r < m else r - m + 1
                    for r in (h % (2 * m) for h in hmac_int63(self._key, [str(v) for v in values]))]

        ints = integral_series(subjects)
        keys = ints if ints is not None else as_text(subjects)
        return map_values(keys, offsets, dtype="Int64")

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        if subjects is None or len(subjects) != len(series):
            raise OperatorError(f"{self.name}: needs the subject column, one subject per value")
        days = self.offset_days(subjects.reset_index(drop=True))
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            delta = pd.to_timedelta(days.to_numpy(dtype="float64", na_value=np.nan), unit="D")
            shifted = series.reset_index(drop=True) + pd.Series(delta)
            shifted.index = series.index
            return shifted.rename(series.name)
        present = series.dropna()
        if all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present):
            values = series.to_numpy(dtype=object)
            out = [None if v is None or pd.isna(v) or pd.isna(d) else v + dt.timedelta(days=int(d))
                   for v, d in zip(values, days.to_numpy(dtype=object), strict=True)]
            return pd.Series(out, index=series.index, name=series.name, dtype=object)
        if all(isinstance(v, dt.datetime) for v in present):
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
            return sa.type_coerce(column + sa.func.make_interval(0, 0, 0, 0, sa.cast(days * 24, sa.Integer)),
                                  column.type)
        return sa.type_coerce(column + sa.cast(days, sa.Integer), column.type)
