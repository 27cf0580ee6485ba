"""`pseudonymize`: a keyed HMAC-SHA256 pseudonym, the same for the same input and key in every table and run.

Text becomes ``lt1.<key_id>.<40 base64url chars>`` (the first 30 bytes of the HMAC, 240 bits), so a
reader can tell which key made it and rotate keys. Integers become a non-negative 63-bit integer (the
first 8 bytes of the HMAC of the decimal text, top bit cleared): with n distinct ids the chance of any
collision is about n**2 / 2**64, i.e. 5e-8 for a million ids and 5e-4 for a hundred million, so a
pseudonymized integer key column is unique in practice but not by construction. Without the key the
tokens cannot be recomputed from a dictionary of candidate inputs, unlike a plain hash.
"""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.base import (
    KEY_ID_PATTERN,
    Hmac,
    Operator,
    OperatorError,
    as_text,
    dialect_name,
    integral_series,
    key_param,
    map_values,
    pg_hmac_int63,
)

TOKEN_VERSION = "lt1"
TOKEN_BYTES = 30  # a multiple of 3: base64 without padding, and tokens of many values encode in one call
TOKEN_CHARS = TOKEN_BYTES * 4 // 3
TOKEN_REGEX = rf"^{TOKEN_VERSION}\.{KEY_ID_PATTERN}\.[A-Za-z0-9_-]{{{TOKEN_CHARS}}}$"
_TOKEN = re.compile(TOKEN_REGEX)
_TOKEN_START = TOKEN_VERSION + "."


def is_token(value: object) -> bool:
    """Whether a value is a text pseudonym made by any key."""
    return isinstance(value, str) and value.startswith(_TOKEN_START) and _TOKEN.fullmatch(value) is not None


class Pseudonymize(Operator):
    name = "pseudonymize"
    kinds = frozenset({"text", "integer"})
    idempotent = True  # for text; an integer pseudonym is just another integer
    needs_key = True

    def _setup(self) -> None:
        self._key, key_id = self.ctx.require_key(self.name)
        self._prefix = f"{TOKEN_VERSION}.{key_id}."
        self._hmac = Hmac(self._key)

    def is_idempotent(self, kind: str) -> bool:
        return kind == "text"

    def tokens(self, values: list[str]) -> list[str]:
        """Tokens for a list of strings; values that already are tokens are returned unchanged."""
        n = len(values)
        if not n:
            return []
        blob = np.frombuffer(self._hmac.digests(values), dtype=np.uint8).reshape(n, 32)[:, :TOKEN_BYTES]
        encoded = base64.urlsafe_b64encode(blob.tobytes()).decode("ascii")
        prefix = self._prefix
        out = [prefix + encoded[i:i + TOKEN_CHARS] for i in range(0, n * TOKEN_CHARS, TOKEN_CHARS)]
        for i, v in enumerate(values):
            if v.startswith(_TOKEN_START) and _TOKEN.fullmatch(v):
                out[i] = v
        return out

    def integers(self, values: list[int]) -> list[int]:
        return self._hmac.int63([str(int(v)) for v in values]).tolist()

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        if pd.api.types.is_bool_dtype(series.dtype):
            raise OperatorError(f"{self.name}: cannot pseudonymize a boolean column; valid kinds: text, integer")
        if not isinstance(series.dtype, pd.StringDtype):
            ints = integral_series(series)
            if ints is not None:
                return map_values(ints, self.integers, dtype="Int64")
        return map_values(as_text(series), self.tokens)

    def sql(self, column: ColumnElement, dialect, subject=None) -> ColumnElement | None:
        if dialect_name(dialect) != "postgresql":
            return None  # SQLite has no HMAC
        if isinstance(column.type, sa.Integer):
            return sa.type_coerce(pg_hmac_int63(sa.cast(column, sa.Text), self._key), column.type)
        digest = sa.func.hmac(sa.func.convert_to(column, "UTF8"), key_param(self._key), "sha256")
        # PostgreSQL's base64 wraps lines at 76 characters; 40 never wrap. No padding for 30 bytes.
        b64url = sa.func.translate(sa.func.encode(sa.func.substr(digest, 1, TOKEN_BYTES), "base64"), "+/", "-_")
        token = sa.literal(self._prefix, sa.Text) + sa.type_coerce(b64url, sa.Text)
        already = column.op("~")(sa.literal(TOKEN_REGEX, sa.Text))
        return sa.type_coerce(sa.case((already, column), else_=token), sa.String)

    def form_regex(self, kind: str = "text") -> str | None:
        return TOKEN_REGEX if kind == "text" else r"^[0-9]+$"
