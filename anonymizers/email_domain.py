"""`email_domain`: keeps the part after the last `@`, for aggregates by mail provider.

The result is always a domain (dot-separated labels of letters, digits, `-` or non-ASCII) or NULL, and a
value that already is a domain is kept, so applying the operator twice changes nothing.

Only ASCII letters are lowercased: DNS is case-insensitive in ASCII only, and this keeps Python, SQLite
(whose lower() is ASCII-only) and PostgreSQL (whose lower() depends on the locale) in exact agreement.
"""

from __future__ import annotations

import re
import string

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import Operator, as_text, dialect_name, map_values

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_LABEL = "[A-Za-z0-9\u0080-\U0010ffff-]+"
DOMAIN_REGEX = rf"^{_LABEL}(?:\.{_LABEL})+$"
_DOMAIN = re.compile(DOMAIN_REGEX)
_PG_DOMAIN_REGEX = "^[-A-Za-z0-9\u0080-\U0010ffff]+([.][-A-Za-z0-9\u0080-\U0010ffff]+)+$"
# The same language in SQLite's GLOB: only label characters and dots, a dot, no empty label.
_GLOB_BAD_CHAR = "*[^-A-Za-z0-9.\u0080-\U0010ffff]*"


def _domains(values: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for v in values:
        domain = v.rpartition("@")[2]
        out.append(domain.translate(_ASCII_LOWER) if _DOMAIN.fullmatch(domain) else None)
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
            domain = sa.func.coalesce(sa.func.substring(column, sa.literal_column("'@([^@]*)$'")), column)
            lowered = sa.func.translate(domain, string.ascii_uppercase, string.ascii_lowercase)
            ok = domain.op("~")(sa.literal(_PG_DOMAIN_REGEX, sa.Text))
            return sa.type_coerce(sa.case((ok, lowered), else_=sa.null()), sa.String)
        if name == "sqlite":
            # rtrim(x, x-without-@) strips everything after the last '@': what remains is the local part.
            head = sa.func.rtrim(column, sa.func.replace(column, "@", ""))
            domain = sa.func.substr(column, sa.func.length(head) + 1)
            ok = sa.and_(domain.op("NOT GLOB")(_GLOB_BAD_CHAR), domain.op("GLOB")("*.*"),
                         domain.op("NOT GLOB")(".*"), domain.op("NOT GLOB")("*."),
                         domain.op("NOT GLOB")("*..*"))
            return sa.type_coerce(sa.case((ok, sa.func.lower(domain)), else_=sa.null()), sa.String)
        return None

    def writes_null(self, kind: str, subject_nullable: bool = True) -> str | None:
        return "writes NULL for a value without a domain"

    def form_regex(self, kind: str = "text") -> str:
        return DOMAIN_REGEX.replace("A-Za-z", "a-z")
