"""`bucket`: replaces a number with the lower bound of its bucket of `size` (ages, amounts).

Numbers are bucketed as the decimals they are written as: 0.7 with size 0.1 is 0.7 (binary floating point
alone would put 0.7 = 0.69999999999999996 in the bucket 0.6000000000000001), a NUMERIC stays exact (a float
would turn 123456789012345678.99 into a "lower bound" above it), and a fractional size is refused on an
integer column, which could not hold its bounds (PostgreSQL would round 7.5 to 8, SQLite store a REAL).
"""

from __future__ import annotations

import decimal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, OperatorError, Params, dialect_name, integral_series

# Within this relative distance of a whole number, a float quotient x / size is that number: the error of one
# division and of the binary forms of x and size, never a real difference between decimals people write.
_REL_TOLERANCE = 1e-12


class BucketParams(Params):
    size: StrictInt | StrictFloat = Field(gt=0)


class Bucket(Operator):
    name = "bucket"
    Params = BucketParams
    shorthand = "size"
    kinds = frozenset({"integer", "float"})
    idempotent = True

    def _setup(self) -> None:
        self._dsize = decimal.Decimal(repr(self.params.size))
        self._integral = self._dsize == self._dsize.to_integral_value()
        self._places = max(0, -self._dsize.normalize().as_tuple().exponent)

    def accepts(self, kind: str) -> bool:
        # An integer column cannot hold 7.5, the lower bound of 8 in buckets of 2.5.
        return super().accepts(kind) and (kind != "integer" or self._integral)

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        size = self.params.size
        if self._integral and pd.api.types.is_integer_dtype(series.dtype):
            return series // int(size) * int(size)
        if series.dtype is np.dtype(object):
            present = series.dropna()
            if self._integral:
                ints = integral_series(series)
                if ints is not None:
                    return ints // int(size) * int(size)
            if len(present) and all(isinstance(v, decimal.Decimal) for v in present):
                return self._decimals(series)
        try:
            x = pd.to_numeric(series, errors="raise").astype("float64")
        except (TypeError, ValueError):
            raise OperatorError(f"{self.name}: the column holds values that are not numbers") from None
        q = x / size
        k = np.floor(q)
        whole = q.round()
        k = k.where(~((whole - q).abs() <= _REL_TOLERANCE * whole.abs()), whole)
        return (k * size).round(self._places) if self._places < 16 else k * size

    def _decimals(self, series: pd.Series) -> pd.Series:
        """Exact NUMERIC values (Decimal) bucketed exactly."""
        size = self._dsize

        def one(v: object) -> object:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return None
            if not v.is_finite():
                return v
            return (v / size).to_integral_value(rounding=decimal.ROUND_FLOOR) * size

        with decimal.localcontext() as ctx:
            ctx.prec = 100
            out = [one(v) for v in series.to_numpy(dtype=object)]
        return pd.Series(out, index=series.index, name=series.name, dtype=object)

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        name = dialect_name(dialect)
        if name not in ("postgresql", "sqlite"):
            return None
        size = self.params.size
        if self._integral and isinstance(column.type, sa.Integer):
            size = int(size)
            # % truncates toward zero in both dialects; step down for negatives to get the floor.
            rem = column % size
            return sa.type_coerce(
                sa.case((rem < 0, column - rem - size), else_=column - rem), column.type)
        if not isinstance(column.type, sa.Float):
            return None  # exact NUMERIC: Python's Decimal arithmetic
        # The same steps as `apply`: the float quotient, snapped to a whole number within the tolerance, else
        # floored; the bound rounded to the size's decimal places.
        x = sa.cast(column, sa.Float)
        s = sa.literal(float(size), sa.Float)
        q = x / s
        whole = sa.func.round(q)
        if name == "postgresql":
            floor = sa.func.floor(q)
        else:
            truncated = sa.cast(q, sa.Integer)
            floor = sa.case((q < truncated, truncated - 1), else_=truncated)
        k = sa.case((sa.func.abs(whole - q) <= sa.literal(_REL_TOLERANCE, sa.Float) * sa.func.abs(whole), whole),
                    else_=floor)
        bound = k * s
        if self._places >= 16:
            return sa.type_coerce(bound, sa.Float)
        if name == "postgresql":
            bound = sa.cast(sa.func.round(sa.cast(bound, sa.Numeric), self._places), sa.Float)
        else:
            bound = sa.func.round(bound, self._places)
        return sa.type_coerce(bound, sa.Float)
