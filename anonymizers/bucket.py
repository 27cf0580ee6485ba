"""`bucket`: replaces a number with the lower bound of its bucket of `size` (ages, amounts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, OperatorError, Params, dialect_name, integral_series


class BucketParams(Params):
    size: StrictInt | StrictFloat = Field(gt=0)


class Bucket(Operator):
    name = "bucket"
    Params = BucketParams
    shorthand = "size"
    kinds = frozenset({"integer", "float"})
    idempotent = True

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        size = self.params.size
        if isinstance(size, int) and pd.api.types.is_integer_dtype(series.dtype):
            return series // size * size
        if isinstance(size, int) and series.dtype is np.dtype(object):
            ints = integral_series(series)
            if ints is not None:
                return ints // size * size
        try:
            x = pd.to_numeric(series, errors="raise").astype("float64")
        except (TypeError, ValueError):
            raise OperatorError(f"{self.name}: the column holds values that are not numbers") from None
        k = np.floor(x / size)
        # x / size can round just below an integer; the step back up keeps op(op(x)) == op(x).
        k = k.where(~((k + 1) * size <= x), k + 1)
        return k * size

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        name = dialect_name(dialect)
        if name not in ("postgresql", "sqlite"):
            return None
        size = self.params.size
        if isinstance(size, int) and isinstance(column.type, sa.Integer):
            # % truncates toward zero in both dialects; step down for negatives to get the floor.
            rem = column % size
            return sa.type_coerce(
                sa.case((rem < 0, column - rem - size), else_=column - rem), column.type)
        if not isinstance(column.type, sa.Float | sa.Integer):
            return None  # exact NUMERIC arithmetic would not match Python's floats
        x = sa.cast(column, sa.Float)
        s = sa.literal(float(size), sa.Float)
        q = x / s
        if name == "postgresql":
            k = sa.func.floor(q)
        else:
            whole = sa.cast(q, sa.Integer)
            k = sa.case((q < whole, whole - 1), else_=whole)
        return sa.type_coerce(sa.case(((k + 1) * s <= x, (k + 1) * s), else_=k * s), sa.Float)
