"""`mask`: keeps `keep_first`/`keep_last` characters and replaces the rest with `char` (phone numbers).

A value no longer than `keep_first + keep_last` is masked entirely, so a short value is never kept whole.
"""

from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, Params, as_text, dialect_name, map_values


def _text(expr: ColumnElement) -> ColumnElement:
    return sa.type_coerce(expr, sa.Text)  # so `concat` renders ||, not numeric +


class MaskParams(Params):
    keep_first: int = Field(default=0, ge=0)
    keep_last: int = Field(default=0, ge=0)
    char: str = Field(default="*", min_length=1, max_length=1)


class Mask(Operator):
    name = "mask"
    Params = MaskParams
    kinds = frozenset({"text"})
    idempotent = True

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        first, last, char = self.params.keep_first, self.params.keep_last, self.params.char
        kept = first + last

        def masked(values: list[str]) -> list[str]:
            out = []
            for v in values:
                n = len(v)
                if n <= kept:
                    out.append(char * n)
                else:
                    out.append(v[:first] + char * (n - kept) + v[n - last:])
            return out

        return map_values(as_text(series), masked)

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        name = dialect_name(dialect)
        first, last, char = self.params.keep_first, self.params.keep_last, self.params.char
        if name == "postgresql":
            def repeat(count: ColumnElement) -> ColumnElement:
                return sa.func.repeat(sa.literal(char, sa.Text), count)
        elif name == "sqlite":
            def repeat(count: ColumnElement) -> ColumnElement:
                # SQLite has no repeat(): zeroblob(n) is n zero bytes, hex() makes n '00' pairs.
                return sa.func.replace(sa.func.hex(sa.func.zeroblob(count)), "00", sa.literal(char, sa.Text))
        else:
            return None
        n = sa.func.length(column)
        middle = (_text(sa.func.substr(column, 1, first)).concat(_text(repeat(n - (first + last))))
                  .concat(_text(sa.func.substr(column, n - last + 1))))
        expr = sa.case((n <= first + last, repeat(n)), else_=middle)
        return sa.type_coerce(expr, sa.String)

    def form_regex(self, kind: str = "text") -> str:
        first, last = self.params.keep_first, self.params.keep_last
        c = re.escape(self.params.char)
        return rf"^(?:[\s\S]{{{first}}}{c}+[\s\S]{{{last}}}|{c}{{0,{first + last}}})$"
