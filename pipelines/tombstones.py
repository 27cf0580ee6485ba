"""Records of subject deletions that outlive the subject's own row, so its other rows still fall due.

Discovery finds a deleted subject's rows through the subjects table's `deleted_at`. When Lethe itself
erases a subject's row before the grace period is over (a retention rule on the subjects table, or a
vault release), or anonymizes it with an operator on `deleted_at`, that record would go and the
subject's other rows would never fall due.
A tombstone keeps the subject id and the deletion instant until a run past the grace period has
processed those rows; the subjects table's apply step, the last of a run, then forgets it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from pipelines.context import RunContext
from pipelines.store import in_key_texts, key_text
from pipelines.timestamps import as_utc, at_or_before

_meta = sa.MetaData()
# The subject id is kept as text (the database's own CAST, as `key_text` renders it), so one table
# serves any id type; discovery casts it back to each subject column's type (`deleted`, `in_key_texts`),
# so the subject columns stay bare, free to use their indexes, with no cast per row. `deleted_at` is a
# naive UTC timestamp, comparable with the cutoff by `at_or_before` whatever type the subjects table
# keeps its `deleted_at` in.
TOMBSTONES = sa.Table(
    "lethe_subject_tombstones", _meta,
    sa.Column("subject_key", sa.Text, primary_key=True),  # any length: subject ids may be long
    sa.Column("deleted_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(80), nullable=False),
)
_COLUMNS = ["subject_key", "deleted_at", "run_id"]


def ensure(engine: Engine) -> None:
    _meta.create_all(engine, tables=[TOMBSTONES])


def exists(engine: Engine) -> bool:
    return sa.inspect(engine).has_table(TOMBSTONES.name)


def is_subjects_table(ctx: RunContext, name: str) -> bool:
    s = ctx.policy.subjects
    return s is not None and name == s.table and s.table in ctx.tables


def _cutoff(ctx: RunContext) -> dt.datetime:
    return ctx.policy.subjects.erase_after.before(ctx.instant)


def _past_grace(ctx: RunContext) -> sa.ColumnElement[bool]:
    return at_or_before(TOMBSTONES.c.deleted_at, _cutoff(ctx), ctx.dialect)


def deleted(ctx: RunContext, subject: sa.ColumnElement) -> sa.ColumnElement[bool] | None:
    """`subject` is the id of a subject deleted at or before D minus the grace period whose deletion
    record Lethe erased or anonymized; None when no such tombstone exists (the usual case, so
    discovery's predicates stay free of a second subquery). Read once, when the predicates are built:
    tombstones a run writes are inside the grace period, except a vault release's, and the release runs
    before the apply step.
    """
    if not waiting(ctx):
        return None
    return in_key_texts(subject, sa.select(TOMBSTONES.c.subject_key).where(_past_grace(ctx)))


def _utc_sql(column: sa.Column, dialect: str) -> sa.ColumnElement:
    """A `deleted_at` column as a naive UTC timestamp (SQLite: its normalised text), NULL if unreadable."""
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", column)  # reads the shapes julianday() reads
    if dialect == "postgresql" and getattr(column.type, "timezone", False):
        return sa.func.timezone("UTC", column)
    return sa.cast(column, sa.DateTime)


def record_lost(conn: Connection, ctx: RunContext, name: str, where: sa.ColumnElement[bool], *,
                anonymizing: bool = False) -> int:
    """Before the subjects table's rows matching `where` lose their record of the deletion (in the same
    transaction): erased, or, when `anonymizing`, anonymized by a policy with an operator on `deleted_at`.
    Tombstones for those whose subject is deleted but still inside the grace period; a subject past it
    needs none: every other table was applied earlier in this run. Returns how many were written.
    """
    if not is_subjects_table(ctx, name) or (anonymizing and not _anonymizes_deleted_at(ctx)):
        return 0
    s = ctx.policy.subjects
    table = ctx.tables[s.table]
    sid, when = table.c[s.id], table.c[s.deleted_at]
    key, utc = key_text(sid), _utc_sql(when, ctx.dialect)
    rows = (sa.select(key, sa.func.min(utc), sa.literal(ctx.run_id, sa.String))
            .where(where, sid.is_not(None), utc.is_not(None),
                   sa.not_(at_or_before(when, _cutoff(ctx), ctx.dialect)),
                   ~sa.exists().where(TOMBSTONES.c.subject_key == key))
            .group_by(key))  # one tombstone per subject, should its id not be unique in the table
    return _insert_new(conn, rows)


def _insert_new(conn: Connection, rows: sa.Select) -> int:
    """Insert these tombstones but those of subjects already tombstoned; returns how many it wrote (counted
    by RETURNING: the driver reports no row count for an INSERT from a SELECT on PostgreSQL).

    The statements' NOT EXISTS skips tombstones committed before; ON CONFLICT also skips one that a
    concurrent range chunk of the subjects table inserts meanwhile (a subject id that is not unique in
    that table), which would otherwise fail the chunk.
    """
    if conn.dialect.name not in ("postgresql", "sqlite"):
        return conn.execute(TOMBSTONES.insert().from_select(_COLUMNS, rows)).rowcount  # as the driver counts
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    insert = (dialect_insert(TOMBSTONES).from_select(_COLUMNS, rows)
              .on_conflict_do_nothing(index_elements=[TOMBSTONES.c.subject_key])
              .returning(TOMBSTONES.c.subject_key))
    return len(conn.execute(insert).all())


def _anonymizes_deleted_at(ctx: RunContext) -> bool:
    s = ctx.policy.subjects
    op = ctx.operators.get(s.table, {}).get(s.deleted_at)
    return op is not None and op.name != "keep"


def record_released(conn: Connection, ctx: RunContext, name: str, rows: Iterable[tuple[object, object]], *,
                    anonymizing: bool = False) -> int:
    """Tombstones for subjects-table rows a vault release erases or, when `anonymizing`, returns to the
    store anonymized by a policy with an operator on `deleted_at`; as (subject id in the store column's
    terms, deleted_at as the vault kept it) pairs; rows of live subjects are skipped.

    Every deleted subject gets one, past the grace period or not: the release runs before this run's
    other tables are applied, and the vault row was how discovery knew of the deletion.
    """
    if not is_subjects_table(ctx, name) or (anonymizing and not _anonymizes_deleted_at(ctx)):
        return 0
    id_column = ctx.tables[name].c[ctx.policy.subjects.id]
    written = 0
    for subject, when in rows:
        aware = as_utc(when)
        stamp = aware.replace(tzinfo=None) if aware else None
        if subject is None or stamp is None:
            continue
        key = key_text(sa.literal(subject, id_column.type))  # the store's own text form of the id
        one = sa.select(key, sa.literal(stamp, sa.DateTime), sa.literal(ctx.run_id, sa.String)).where(
            ~sa.exists().where(TOMBSTONES.c.subject_key == key))
        written += _insert_new(conn, one)
    return written


def waiting(ctx: RunContext) -> bool:
    """Whether tombstones past the grace period wait to be forgotten."""
    if ctx.policy.subjects is None or not exists(ctx.store):
        return False
    with ctx.store.connect() as conn:
        return bool(conn.execute(sa.select(sa.exists().where(_past_grace(ctx)))).scalar())


def forget_past_grace(ctx: RunContext) -> int:
    """Forget the tombstones past the grace period, once every other table was applied (call from the
    subjects table's step, the last of a run): as with a subject row erased after its grace period,
    nothing finds that subject any more. Returns how many were forgotten.
    """
    if ctx.policy.subjects is None or not exists(ctx.store):
        return 0
    with ctx.store.begin() as conn:
        return conn.execute(TOMBSTONES.delete().where(_past_grace(ctx))).rowcount
