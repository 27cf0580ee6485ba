"""Moving chunks between the database and pandas: read by key list, write back in bulk."""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.store import key_in

# Rows per fetch, and per executemany on SQLite. A row object, or a parameter dict, per row of a whole
# 100,000-row chunk took more memory than the chunk's data: 56 MiB more at the peak of a chunk of
# pseudonymized orders (benchmarks/README.md).
ROW_BATCH = 5_000


def to_python(value: object) -> object:
    """A DBAPI-friendly value: numpy scalars, pandas timestamps and NA become plain Python."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).to_pydatetime()
    return value


def read_rows(conn: Connection, table: sa.Table, key: str, keys: Sequence[object],
              columns: Sequence[str]) -> pd.DataFrame:
    """The chunk's rows as a DataFrame of object columns, each column once (a subject column may also be
    anonymized). Read in batches into one list per column, so a whole chunk of row objects never exists at once.
    """
    cols = list(dict.fromkeys([key, *columns]))
    result = conn.execute(sa.select(*(table.c[c] for c in cols)).where(key_in(table.c[key], keys)))
    data: list[list] = [[] for _ in cols]
    for part in result.partitions(ROW_BATCH):
        for values, column in zip(data, zip(*part, strict=True), strict=True):
            values.extend(column)
    return pd.DataFrame(dict(zip(cols, data, strict=True)), dtype=object)


def write_back(conn: Connection, table: sa.Table, key: str, keys: Sequence[object],
               values: dict[str, pd.Series]) -> None:
    """Set `values[col][i]` on the row with key `keys[i]`: executemany on SQLite (in batches of ROW_BATCH
    rows), COPY + UPDATE…FROM on PostgreSQL; the rows are produced as they are sent, never all at once.
    """
    if not values or not keys:
        return
    cols = list(values)
    records = _records(keys, [values[c].tolist() for c in cols])
    if conn.dialect.name == "postgresql":
        _copy_update(conn, table, key, cols, records)
        return
    stmt = (sa.update(table).where(table.c[key] == sa.bindparam("lethe_k"))
            .values({table.c[c]: sa.bindparam(f"lethe_v{j}") for j, c in enumerate(cols)}))
    names = ["lethe_k", *(f"lethe_v{j}" for j in range(len(cols)))]
    while batch := list(itertools.islice(records, ROW_BATCH)):
        conn.execute(stmt, [dict(zip(names, r, strict=True)) for r in batch])


def _records(keys: Sequence[object], columns: list[list]) -> Iterator[list]:
    """[key, value of each column] for row i, as DBAPI-friendly values."""
    for i, k in enumerate(keys):
        yield [to_python(k), *(to_python(col[i]) for col in columns)]


def _copy_update(conn: Connection, table: sa.Table, key: str, cols: list[str], records: Iterable[list]) -> None:
    tmp_name = f"lethe_tmp_{secrets.token_hex(4)}"
    tmp = sa.Table(tmp_name, sa.MetaData(), *(sa.Column(c, table.c[c].type) for c in [key] + cols),
                   prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    tmp.create(conn)
    prep = conn.dialect.identifier_preparer
    copy_sql = f"COPY {prep.quote(tmp_name)} ({', '.join(prep.quote(c) for c in [key] + cols)}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(copy_sql) as copy:
        for rec in records:
            copy.write_row(rec)
    cursor.close()
    conn.execute(sa.update(table).values({table.c[c]: tmp.c[c] for c in cols})
                 .where(table.c[key] == tmp.c[key]))
    conn.execute(sa.text(f"DROP TABLE {prep.quote(tmp_name)}"))

