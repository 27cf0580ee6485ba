"""Batches of rows bounded in bytes as well as in rows, for the steps that carry values through Lethe: the
vault's copy, release and checksum check (whole rows), and operators that run in pandas. A batch of 20,000
rows is a few megabytes of orders but 60 GB of 3 MB uploaded files; a chunk of 100,000 support tickets with
100 KB bodies to fake is 10 GB.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import sqlalchemy as sa

from pipelines.store import column_kind

# Bytes of row values per batch. A few hundred rows of megabytes each; thousands of narrow rows stay one batch.
BATCH_BYTES = int(os.environ.get("LETHE_BATCH_BYTES", str(64 * 2**20)))
_FIXED = 16  # an allowance for a number, date or boolean: what matters is text and binary


def row_bytes(columns: Iterable[sa.Column], dialect: str) -> sa.ColumnElement[int]:
    """SQL for roughly how many bytes these values of a row take, computed in the database without sending them:
    PostgreSQL's octet_length reads a stored text or bytea value's length, not the value (pg_column_size,
    for other types, its stored size); SQLite's length() of a blob reads only the record header.
    """
    sizes: list[sa.ColumnElement] = []
    for column in columns:
        kind = column_kind(column)
        if dialect == "postgresql":
            size = sa.func.octet_length(column) if kind in ("text", "binary") else sa.func.pg_column_size(column)
        elif kind in ("text", "binary", "other"):
            size = sa.func.length(column)
        else:
            size = sa.literal(_FIXED)
        sizes.append(sa.func.coalesce(sa.cast(size, sa.BigInteger), 0))
    return sa.cast(sum(sizes[1:], sizes[0]) if sizes else sa.literal(0), sa.BigInteger)


def by_bytes(rows: Iterable[tuple], *, max_rows: int, max_bytes: int | None = None) -> Iterator[list[tuple]]:
    """`rows`, each ending with its size in bytes, in consecutive batches of at most `max_rows` rows and
    `max_bytes` bytes (default BATCH_BYTES; a row larger than that alone). The size is dropped from each row.
    """
    max_bytes = BATCH_BYTES if max_bytes is None else max_bytes
    batch: list[tuple] = []
    total = 0
    for *row, size in rows:
        size = int(size or 0)
        if batch and (len(batch) >= max_rows or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(tuple(row))
        total += size
    if batch:
        yield batch


def wide(columns: Iterable[sa.Column]) -> bool:
    """Whether any of these columns can hold values of any size (text, binary, JSON and the like)."""
    return any(column_kind(c) in ("text", "binary", "other") for c in columns)
