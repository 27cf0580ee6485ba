"""Moving chunks between the database and pandas: read by key list, write back in bulk."""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.store import key_in


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
    """The chunk's rows as a DataFrame of object columns, in the order of `keys`."""
    cols = [key] + [c for c in columns if c != key]
    rows = conn.execute(sa.select(*(table.c[c] for c in cols)).where(key_in(table.c[key], keys))).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=cols, dtype=object)
    return frame


def write_back(conn: Connection, table: sa.Table, key: str, keys: Sequence[object],
               values: dict[str, pd.Series]) -> None:
    """Set `values[col][i]` on the row with key `keys[i]`: executemany on SQLite, COPY + UPDATE…FROM on PostgreSQL."""
    if not values or not keys:
        return
    cols = list(values)
    records = [[to_python(k)] + [to_python(values[c].iloc[i]) for c in cols] for i, k in enumerate(keys)]
    if conn.dialect.name == "postgresql":
        _copy_update(conn, table, key, cols, records)
        return
    params = [{"lethe_k": r[0], **{f"lethe_v{j}": r[j + 1] for j in range(len(cols))}} for r in records]
    stmt = (sa.update(table).where(table.c[key] == sa.bindparam("lethe_k"))
            .values({table.c[c]: sa.bindparam(f"lethe_v{j}") for j, c in enumerate(cols)}))
    conn.execute(stmt, params)


def _copy_update(conn: Connection, table: sa.Table, key: str, cols: list[str], records: list[list]) -> None:
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

