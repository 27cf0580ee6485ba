"""`redact`: replaces every value with NULL, or with a fixed fill value for NOT NULL columns."""

from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa
from pydantic import Field, StrictBool, StrictFloat, StrictInt
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import ALL_KINDS, Operator, Params


class RedactParams(Params):
    fill: str | StrictInt | StrictFloat | StrictBool | None = Field(default=None, alias="with")


class Redact(Operator):
    name = "redact"
    Params = RedactParams
    shorthand = "with"
    idempotent = True

    def _setup(self) -> None:
        fill = self.params.fill
        if fill is None:
            self.kinds = ALL_KINDS
        elif isinstance(fill, bool):
            self.kinds = frozenset({"boolean"})
        elif isinstance(fill, int):
            self.kinds = frozenset({"integer", "float"})
        elif isinstance(fill, float):
            self.kinds = frozenset({"float"})
        else:
            self.kinds = frozenset({"text"})

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        fill = self.params.fill
        if fill is None:
            # object dtype: a NULL that any column type accepts when written back
            return pd.Series([None] * len(series), index=series.index, name=series.name, dtype=object)
        if isinstance(fill, str):
            return pd.Series(fill, index=series.index, name=series.name, dtype="str")
        return pd.Series(fill, index=series.index, name=series.name)

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement:
        if self.params.fill is None:
            return sa.null()
        return sa.literal(self.params.fill)

    def writes_null(self, kind: str, subject_nullable: bool = True) -> str | None:
        if self.params.fill is None:
            return "sets NULL"
        return None

    def writes_constant(self) -> bool:
        return self.params.fill is not None

    def text_length(self) -> int | None:
        return len(self.params.fill) if isinstance(self.params.fill, str) else None

    def form_regex(self, kind: str = "text") -> str | None:
        if isinstance(self.params.fill, str):
            return f"^{re.escape(self.params.fill)}$"
        return None
