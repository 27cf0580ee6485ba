"""Which rows Lethe has anonymized, so each row is anonymized exactly once.

A side table instead of a flag column because Lethe never alters a user's tables. Discovery joins
against it with NOT EXISTS on its primary key: an index probe per candidate row, so a run costs what
its candidate rows cost and never re-applies operators to rows already processed.

Each marker names the run that anonymized the row (indexed), and `lethe_verified_runs` lists the
runs whose anonymized rows passed verification's form checks: verification re-reads only the rows of
runs not yet verified, so its cost follows the rows runs changed, not every row ever anonymized.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.store import key_in, key_text

_meta = sa.MetaData()
ANONYMIZED = sa.Table(
    "lethe_anonymized", _meta,
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("row_key", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(80), nullable=False),
)
BY_RUN = sa.Index("ix_lethe_anonymized_run_id", ANONYMIZED.c.run_id)
VERIFIED_RUNS = sa.Table(
    "lethe_verified_runs", _meta,
    sa.Column("run_id", sa.String(80), primary_key=True),
    sa.Column("verified_at", sa.String(32), nullable=False),
)


def ensure(engine: Engine) -> None:
    _meta.create_all(engine, tables=[ANONYMIZED, VERIFIED_RUNS])
    BY_RUN.create(engine, checkfirst=True)  # stores whose marker table predates the index


def exists(engine: Engine) -> bool:
    return sa.inspect(engine).has_table(ANONYMIZED.name)


def is_marked(table_name: str, key_as_text: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.exists().where(ANONYMIZED.c.table_name == table_name, ANONYMIZED.c.row_key == key_as_text)


def marked_by_runs(table_name: str, key: sa.Column, run_ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """Rows of `table_name` that one of `run_ids` anonymized: driven by the markers' run index, and the
    marker's text cast back to the key's type so the user table is reached through its own key index.
    """
    if not run_ids:
        return sa.false()
    mine = (ANONYMIZED.c.table_name == table_name, ANONYMIZED.c.run_id.in_(list(run_ids)))
    if isinstance(key.type, sa.types.NullType):  # an SQLite column without a type: compare as text
        return key_text(key).in_(sa.select(ANONYMIZED.c.row_key).where(*mine).scalar_subquery())
    return key.in_(sa.select(sa.cast(ANONYMIZED.c.row_key, key.type)).where(*mine).scalar_subquery())


def record_verified(conn: Connection, run_ids: Sequence[str], at: str) -> None:
    """These runs' anonymized rows passed the form checks; later verifications skip them."""
    if run_ids:
        conn.execute(VERIFIED_RUNS.insert(), [{"run_id": r, "verified_at": at} for r in run_ids])


def marked_keys(conn: Connection, table_name: str, table: sa.Table, key: str,
                keys: Sequence[object]) -> set[object]:
    """Which of these rows (by key, as the database returns it) Lethe has anonymized."""
    if not keys:
        return set()
    col = table.c[key]
    return set(conn.execute(sa.select(col).where(key_in(col, keys), is_marked(table_name, key_text(col)))).scalars())


def mark_rows(conn: Connection, table_name: str, table: sa.Table, key: str, keys: Sequence[object],
              run_id: str) -> None:
    """Record rows as anonymized. The key text comes from the database's own CAST, the same
    expression discovery compares with, so UUIDs, text and integers all match exactly.
    """
    if keys:
        col = table.c[key]
        conn.execute(mark_from(table_name, col, run_id, key_in(col, keys)))


def mark_from(table_name: str, keys: sa.ColumnElement, run_id: str, *where: sa.ColumnElement[bool]) -> sa.Insert:
    """Record as anonymized the keys of `keys`' table (or CTE, such as an UPDATE ... RETURNING) matching `where`."""
    return ANONYMIZED.insert().from_select(
        ["table_name", "row_key", "run_id"],
        sa.select(sa.literal(table_name, sa.String), key_text(keys), sa.literal(run_id, sa.String)).where(*where))


def unmark_where(conn: Connection, table_name: str, table: sa.Table, key: str,
                 where: sa.ColumnElement[bool]) -> None:
    """Forget the markers of the rows matching `where`, about to be erased or moved (call before deleting)."""
    conn.execute(ANONYMIZED.delete().where(
        ANONYMIZED.c.table_name == table_name,
        ANONYMIZED.c.row_key.in_(sa.select(key_text(table.c[key])).where(where).scalar_subquery())))


def mark(conn: Connection, table_name: str, keys: Sequence[object], run_id: str) -> None:
    if keys:
        conn.execute(ANONYMIZED.insert(), [{"table_name": table_name, "row_key": str(k), "run_id": run_id}
                                           for k in keys])


def unmark(conn: Connection, table_name: str, keys: Sequence[object]) -> None:
    if keys:
        conn.execute(ANONYMIZED.delete().where(ANONYMIZED.c.table_name == table_name,
                                               ANONYMIZED.c.row_key.in_([str(k) for k in keys])))
