"""`truncate`: keeps the first `length` characters (postcodes, free-text prefixes)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, Params, as_text, dialect_name, map_values


class TruncateParams(Params):
    length: int = Field(ge=0)


class Truncate(Operator):
    name = "truncate"
    Params = TruncateParams
    shorthand = "length"
    kinds = frozenset({"text"})
    idempotent = True

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        n = self.params.length
        return map_values(as_text(series), lambda values: [v[:n] for v in values])

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        if dialect_name(dialect) not in ("postgresql", "sqlite"):
            return None
        return sa.type_coerce(sa.func.substr(column, 1, self.params.length), sa.String)

    def form_regex(self, kind: str = "text") -> str:
        return rf"^[\s\S]{{0,{self.params.length}}}$"
