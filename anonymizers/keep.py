"""`keep`: leaves a column as it is; useful to state in a policy that a column was considered."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator


class Keep(Operator):
    name = "keep"
    idempotent = True

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        return series.copy()

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement:
        return column
