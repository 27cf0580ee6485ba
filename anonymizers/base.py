"""The contract every operator follows: parameters validated at policy-load time, then a column transform.

A whole-column ``apply`` and, where the database can compute the same result, an equivalent SQL expression.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.sql.elements import ColumnElement

from anonymizers.sql_secrets import secret

KINDS: tuple[str, ...] = ("text", "integer", "float", "date", "datetime", "boolean", "binary", "ip", "other")
ALL_KINDS: frozenset[str] = frozenset(KINDS)
DIALECTS: tuple[str, ...] = ("postgresql", "sqlite")
MIN_KEY_BYTES = 32
KEY_ID_PATTERN = r"[A-Za-z0-9_-]{1,16}"
_KEY_ID = re.compile(KEY_ID_PATTERN)
MAX_INT63 = (1 << 63) - 1

# Beyond this share of distinct values in a column, deduplicating costs more than it saves.
_DEDUPE_SAMPLE = 4096
_DEDUPE_MAX_DISTINCT_SHARE = 0.5


class OperatorError(ValueError):
    """A bad operator name, parameter, key or column: the message says what was wrong and what is valid.

    Messages never contain a personal value or key material.
    """


@dataclass(frozen=True)
class OperatorContext:
    """Everything secret or run-specific an operator may use; operators read no global configuration."""

    key: bytes | None = field(default=None, repr=False)
    key_id: str | None = None

    def require_key(self, operator: str) -> tuple[bytes, str]:
        """The key and key id, or an OperatorError saying what is missing (never showing the key)."""
        if not isinstance(self.key, bytes | bytearray) or not self.key:
            raise OperatorError(f"{operator}: needs the pseudonymization key (bytes, at least {MIN_KEY_BYTES})")
        if len(self.key) < MIN_KEY_BYTES:
            raise OperatorError(
                f"{operator}: the pseudonymization key is {len(self.key)} bytes; at least {MIN_KEY_BYTES} "
                "are required"
            )
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise OperatorError(
                f"{operator}: key_id must be 1-16 characters of A-Z a-z 0-9 _ - (it is written into tokens)"
            )
        return bytes(self.key), self.key_id

    def subkey(self, operator: str, purpose: str) -> bytes:
        """A key derived for one purpose, so operators never share raw HMAC outputs."""
        key, _ = self.require_key(operator)
        return hmac.digest(key, b"lethe/" + purpose.encode(), "sha256")


class Params(BaseModel):
    """Base of every operator's parameter model: unknown keys are an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoParams(Params):
    pass


def _describe_error(operator: str, model: type[Params], err: dict[str, Any]) -> str:
    valid = ", ".join(model.model_fields) or "none"
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(parameters)"
    if err.get("type") == "extra_forbidden":
        return f"{operator}: unknown parameter '{loc}'; valid parameters: {valid}"
    if err.get("type") == "missing":
        return f"{operator}: parameter '{loc}' is required; valid parameters: {valid}"
    # pydantic's `msg` describes the constraint, never the offending value.
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{operator}: parameter '{loc}': {msg}; valid parameters: {valid}"


class Operator:
    """One anonymization operator; subclasses set the class attributes and implement ``apply``."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    # The parameter a bare scalar fills, so `{truncate: 5}` means `{truncate: {length: 5}}`.
    shorthand: ClassVar[str | None] = None
    kinds: ClassVar[frozenset[str]] = ALL_KINDS
    idempotent: ClassVar[bool] = False
    needs_subject: ClassVar[bool] = False
    needs_key: ClassVar[bool] = False
    # On an integer column: the width in bits its results need (None: they stay in the input's range).
    integer_bits: ClassVar[int | None] = None

    def __init__(self, params: Params, ctx: OperatorContext | None = None) -> None:
        if not isinstance(params, self.Params):
            raise OperatorError(f"{self.name}: parameters must be validated with {self.name}.validate() first")
        self.params = params
        self.ctx = ctx or OperatorContext()
        self._setup()

    def _setup(self) -> None:
        """Prepare anything costly or secret-dependent once, at build time."""

    @classmethod
    def validate(cls, raw: Mapping[str, Any] | None = None) -> Params:
        """Typed parameters from a policy mapping, or an OperatorError naming the bad parameter."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise OperatorError(f"{cls.name}: parameters must be a mapping; valid parameters: "
                                f"{', '.join(cls.Params.model_fields) or 'none'}")
        try:
            return cls.Params.model_validate(dict(raw))
        except ValidationError as exc:
            raise OperatorError(
                "; ".join(_describe_error(cls.name, cls.Params, e) for e in exc.errors())
            ) from None

    def text_length(self) -> int | None:
        """On a text column: the most characters a result can have when that may exceed the input's length
        (a VARCHAR(n) column must hold it); None when results are never longer than their input, or unbounded.
        """
        return None

    def writes_constant(self) -> bool:
        """Whether every anonymized value is one and the same (a fill value): a UNIQUE column holds it once."""
        return False

    def accepts(self, kind: str) -> bool:
        """Whether this operator can be applied to a column of this kind."""
        if kind not in ALL_KINDS:
            raise OperatorError(f"unknown column kind '{kind}'; valid kinds: {', '.join(KINDS)}")
        return kind in self.kinds

    def apply(self, series: pd.Series, subjects: pd.Series | None = None) -> pd.Series:
        raise NotImplementedError

    def sql(self, column: ColumnElement, dialect: Any, subject: ColumnElement | None = None
            ) -> ColumnElement | None:
        """The same transformation as ``apply`` computed in the database, or None where there is none."""
        return None

    def form_regex(self, kind: str = "text") -> str | None:
        """A regex every anonymized value of this kind matches, or None when the operator promises no form."""
        return None

    def writes_null(self, kind: str, subject_nullable: bool = True) -> str | None:
        """How this operator may turn a non-NULL value into NULL on a column of this kind ("sets NULL",
        "writes NULL for …"), or None when it never does; the engine refuses such an operator on a
        NOT NULL column before any data is touched.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.params!r}>"


def dialect_name(dialect: Any) -> str:
    return getattr(dialect, "name", dialect)


def as_text(series: pd.Series) -> pd.Series:
    """The column as pandas' string dtype; NULLs stay missing."""
    if isinstance(series.dtype, pd.StringDtype):
        return series
    return series.astype("str")


def dedupe_pays(series: pd.Series) -> bool:
    """Whether a column repeats values often enough that computing once per distinct value is faster.

    The number of distinct values is estimated from a random sample (fixed seed, so the decision is the same
    for the same column) with Chao1: the values seen plus f1**2 / 2 f2 unseen ones, f1 and f2 being how many
    were seen once and twice. A sample's own distinct share says little: 4,096 values drawn from a million in
    which each of 10,000 values repeats 100 times are still 82% distinct.
    """
    n = len(series)
    if n <= 2 * _DEDUPE_SAMPLE:
        return False
    positions = np.random.default_rng(0).choice(n, _DEDUPE_SAMPLE, replace=False)
    counts = series.iloc[positions].value_counts(dropna=True).to_numpy()
    once, twice = int((counts == 1).sum()), int((counts == 2).sum())
    distinct = len(counts) + once * (once - 1) / (2 * (twice + 1))
    present = n * counts.sum() / _DEDUPE_SAMPLE  # NULLs are never computed either way
    return distinct <= present * _DEDUPE_MAX_DISTINCT_SHARE


def map_values(series: pd.Series, fn: Callable[[list], list], dtype: Any = "str") -> pd.Series:
    """Apply ``fn`` (list of non-null values -> list of results, None for NULL) to a column.

    Columns with many repeats are deduplicated first (one computation per distinct value); mostly distinct
    columns skip that step, since factorizing them costs more than it saves.
    """
    n = len(series)
    if dedupe_pays(series):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        out = pd.array(fn(uniques.tolist()), dtype=dtype)
        result = out.take(codes, allow_fill=True)
    else:
        missing = series.isna().to_numpy()
        values = series.to_numpy(dtype=object)
        if missing.any():
            present = ~missing
            full = np.full(n, None, dtype=object)
            full[present] = fn(values[present].tolist())
        else:
            full = np.empty(n, dtype=object)
            full[:] = fn(values.tolist())
        result = pd.array(full, dtype=dtype)
    return pd.Series(result, index=series.index, name=series.name)


def integral_series(series: pd.Series) -> pd.Series | None:
    """The column as nullable Int64 if every non-null value is an integer, else None."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_integer_dtype(dtype):
        return series.astype("Int64")
    if pd.api.types.is_float_dtype(dtype):
        present = series.dropna()
        if len(present) and not np.all(np.mod(present.to_numpy(dtype=float), 1) == 0):
            return None
        return series.astype("Int64") if len(present) else None
    if dtype is np.dtype(object):
        present = series.dropna()
        if len(present) and all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
                                for v in present):
            return series.astype("Int64")
    return None


try:  # CPython's built-in SHA-256: its state copies are a memcpy, OpenSSL's cost ~0.35 us each
    from _sha2 import sha256 as _copyable_sha256  # Python >= 3.12
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from _sha256 import sha256 as _copyable_sha256  # Python 3.11
    except ImportError:
        _copyable_sha256 = hashlib.sha256


class Hmac:
    """HMAC-SHA256 of many short values, 2-4x as fast as ``hmac.digest`` per call.

    HMAC is H(K^opad || H(K^ipad || m)); both padded-key states are hashed once and copied per value.
    """

    def __init__(self, key: bytes) -> None:
        block = key if len(key) <= 64 else hashlib.sha256(key).digest()
        block = block.ljust(64, b"\0")
        self._inner = _copyable_sha256(bytes(b ^ 0x36 for b in block))
        self._outer = _copyable_sha256(bytes(b ^ 0x5C for b in block))

    def digests(self, values: list[str]) -> bytes:
        """The 32-byte digests of the UTF-8 values, concatenated."""
        return self.digests_of(utf8(values))

    def digests_of(self, messages: Iterable[bytes]) -> bytes:
        """The 32-byte digests of byte strings, concatenated.

        Two software SHA-256 compressions per value are most of the cost; the loop body is kept to the calls
        HMAC needs. Mapping the copies, updates and digests at C level over a chunk is 3x slower (measured):
        thousands of live hash objects, which the GC tracks, make every young-generation collection long.
        """
        inner, outer = self._inner.copy, self._outer.copy
        parts: list[bytes] = []
        append = parts.append
        for m in messages:
            i = inner()
            i.update(m)
            o = outer()
            o.update(i.digest())
            append(o.digest())
        return b"".join(parts)

    def int63(self, values: list[str]) -> np.ndarray:
        """A keyed 63-bit non-negative integer per value (first 8 bytes of the HMAC, top bit cleared)."""
        return self.int63_of(utf8(values))

    def int63_of(self, messages: list[bytes]) -> np.ndarray:
        """:meth:`int63` of byte strings."""
        if not messages:
            return np.zeros(0, dtype=np.int64)
        raw = np.frombuffer(self.digests_of(messages), dtype=">u8")[::4]
        return (raw & np.uint64(MAX_INT63)).astype(np.int64)


def utf8(values: list[str]) -> list[bytes]:
    """Each text as UTF-8; lone surrogates (which strict UTF-8 refuses) are encoded as themselves."""
    try:
        return list(map(str.encode, values))  # C-level loop; strict UTF-8 is the common case
    except UnicodeEncodeError:
        return [v.encode("utf-8", "surrogatepass") for v in values]


def pg_hmac_int63(message_text: ColumnElement, key: bytes) -> ColumnElement:
    """PostgreSQL twin of :func:`hmac_int63`; the key is read from the session, never sent in the statement."""
    from sqlalchemy.dialects.postgresql import BIT

    digest = sa.func.hmac(sa.func.convert_to(message_text, "UTF8"), secret(key), "sha256")
    hex8 = sa.func.encode(sa.func.substr(digest, 1, 8), "hex")
    as_int = sa.cast(sa.cast(sa.literal("x", sa.Text) + hex8, BIT(64)), sa.BigInteger)
    return as_int.op("&")(sa.literal(MAX_INT63, sa.BigInteger))
