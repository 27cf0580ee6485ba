"""`email_domain`: keeps the part after the last `@`, for aggregates by mail provider.

Only ASCII letters are lowercased: DNS is case-insensitive in ASCII only, and this keeps Python, SQLite
(whose lower() is ASCII-only) and PostgreSQL (whose lower() depends on the locale) in exact agreement.
"""

from __future__ import annotations

import string

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, as_text, dialect_name, map_values

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _domains(values: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for v in values:
        _, at, domain = v.rpartition("@")
        out.append(domain.translate(_ASCII_LOWER) if at else None)
    return out


class EmailDomain(Operator):
    name = "email_domain"
    kinds = frozenset({"text"})
    idempotent = True

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        return map_values(as_text(series), _domains)

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        name = dialect_name(dialect)
        if name == "postgresql":
            domain = sa.func.substring(column, sa.literal_column("'@([^@]*)$'"))
            lowered = sa.func.translate(domain, string.ascii_uppercase, string.ascii_lowercase)
            return sa.type_coerce(lowered, sa.String)
        if name == "sqlite":
            # rtrim(x, x-without-@) strips everything after the last '@': what remains is the local part.
            head = sa.func.rtrim(column, sa.func.replace(column, "@", ""))
            domain = sa.func.substr(column, sa.func.length(head) + 1)
            return sa.type_coerce(
                sa.case((sa.func.instr(column, "@") > 0, sa.func.lower(domain)), else_=sa.null()), sa.String)
        return None

    def form_regex(self, kind: str = "text") -> str:
        return "^[^@A-Z]*$"
