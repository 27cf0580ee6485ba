"""Legal holds: which are active now (by the wall clock), and a SQL predicate for rows they protect."""

from __future__ import annotations

import datetime as dt
import difflib
import uuid
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.errors import InputError
from pipelines.store import key_text

HOLD_COLUMNS = ("hold_id", "subject_id", "table_name", "record_key", "case_ref", "placed_at", "released_at")
# The provenance columns a vault table adds to its source table's columns (pipelines.vault); a source
# column of the same name could not be copied next to them, so the policy check refuses it.
PROVENANCE = ("lethe_hold_ids", "lethe_run_id", "lethe_moved_at", "lethe_checksum", "lethe_due_action",
              "lethe_was_anonymized")


@dataclass(frozen=True)
class Hold:
    hold_id: str
    subject_id: str | None
    table_name: str | None
    record_key: str | None
    case_ref: str

    def applies_to_table(self, table: str, has_subject: bool) -> bool:
        if self.table_name is not None and self.table_name != table:
            return False
        return self.subject_id is None or has_subject


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def load_active(conn: Connection, table: sa.Table, now: dt.datetime,
                store_tables: Collection[str] | None = None) -> list[Hold]:
    """Active holds: `released_at` NULL or later than `now`. A hold that cannot protect what it was placed
    for stops the run (exit 2) rather than let the rows it meant be erased: no scope, an empty field, or a
    `table_name` that is no table of the store (`store_tables`; a typo such as "mesages").
    """
    # released_at is read untyped: on SQLite a typed DATETIME column raises on unreadable text ('soon') before
    # the check below can keep protecting the data; PostgreSQL's driver still returns datetimes.
    rows = conn.execute(sa.select(*(sa.type_coerce(table.c[c], sa.String).label(c) if c == "released_at"
                                    else table.c[c] for c in HOLD_COLUMNS))).all()
    holds, invalid, empty, unknown, misnamed, no_id = [], [], [], [], set(), 0
    for r in rows:
        released = r.released_at
        if isinstance(released, str):
            try:
                released = dt.datetime.fromisoformat(released)
            except ValueError:
                released = None  # unreadable release time: keep protecting the data
        if released is not None:
            if isinstance(released, dt.date) and not isinstance(released, dt.datetime):
                released = dt.datetime.combine(released, dt.time())
            if released.tzinfo is None:
                released = released.replace(tzinfo=dt.UTC)
            if released <= now:
                continue
        hold = Hold(_text(r.hold_id), _text(r.subject_id), _text(r.table_name), _text(r.record_key),
                    _text(r.case_ref) or "")
        if hold.hold_id is None:
            no_id += 1  # the vault records which holds keep a row: a hold needs an id (sorting them failed)
            continue
        if hold.subject_id is None and hold.table_name is None and hold.record_key is None:
            invalid.append(hold.hold_id)
            continue
        if any(v is not None and not v.strip() for v in (hold.subject_id, hold.table_name, hold.record_key)):
            empty.append(hold.hold_id)
            continue
        if store_tables is not None and hold.table_name is not None and hold.table_name not in store_tables:
            unknown.append(hold.hold_id)
            misnamed.add(hold.table_name)
        holds.append(hold)
    problems = []
    if empty:
        problems.append(f"legal hold(s) {', '.join(sorted(empty))} have an empty subject_id, table_name or "
                        "record_key, which matches no row; set it to NULL (any) or to a value, or release them")
    if unknown:
        hints = {name: difflib.get_close_matches(name, list(store_tables or ()), n=1) for name in misnamed}
        hint = "; ".join(f"did you mean {close[0]}?" for close in hints.values() if close)
        problems.append(f"legal hold(s) {', '.join(sorted(unknown))} name a table_name that is no table of the "
                        f"store, so they would protect nothing{'; ' + hint if hint else ''}; valid: a table "
                        "of the store, or NULL for every table")
    if invalid:
        problems.append(f"legal hold(s) {', '.join(sorted(invalid))} have no scope (subject_id, table_name "
                        "and record_key are all NULL); set at least one, or release them")
    if no_id:
        problems.append(f"{no_id} active legal hold(s) have hold_id NULL; give each an id (the vault records "
                        "the ids of the holds that keep a row), or release them")
    if problems:
        raise InputError(problems)
    return holds


def as_key_text(value: str, column: sa.Column) -> str:
    """A hold's subject_id or record_key spelled as the store writes the column's values as text (`key_text`).

    A UUID written in capitals, in braces or without hyphens, as other systems show it, is the same UUID, and
    PostgreSQL writes it lower-case with hyphens: such a hold matched no row, which was then anonymized or
    erased. Any other value is compared as written.
    """
    if isinstance(column.type, sa.Uuid):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            return value
    return value


def held_predicate(holds: list[Hold], table_name: str, table: sa.Table, key: str,
                   subject: str | None, source: sa.Table | None = None) -> sa.ColumnElement[bool]:
    """True for rows of `table` protected by any hold (every non-NULL field of a hold must match). `source`: the
    store's table when `table` is its copy in the vault, whose column types say how holds spell keys.
    """
    relevant = [h for h in holds if h.applies_to_table(table_name, subject is not None)]
    if not relevant:
        return sa.false()
    source = table if source is None else source
    key_col = key_text(table.c[key])
    subj_col = key_text(table.c[subject]) if subject is not None else None

    def as_key(v: str) -> str:
        return as_key_text(v, source.c[key])

    def as_subject(v: str) -> str:
        return as_key_text(v, source.c[subject])

    by_subject = sorted({as_subject(h.subject_id) for h in relevant if h.subject_id and h.record_key is None})
    by_key = sorted({as_key(h.record_key) for h in relevant if h.record_key and h.subject_id is None})
    both = [(as_subject(h.subject_id), as_key(h.record_key)) for h in relevant if h.subject_id and h.record_key]
    whole = any(h.subject_id is None and h.record_key is None for h in relevant)
    if whole:
        return sa.true()
    clauses = []
    if by_subject:
        clauses.append(sa.and_(table.c[subject].is_not(None), subj_col.in_(by_subject)))
    if by_key:
        clauses.append(key_col.in_(by_key))
    clauses.extend(sa.and_(table.c[subject].is_not(None), subj_col == s, key_col == k) for s, k in both)
    return sa.or_(*clauses)


def holds_matching(holds: list[Hold], table: sa.Table, key: str, subject: str | None, key_column: str,
                   subject_column: str | None) -> list[str]:
    """The ids of the holds that protect one row of the store's `table` (for the vault's provenance column):
    `key` and `subject` as `key_text` spells them.
    """
    return sorted(
        h.hold_id for h in holds
        if (h.table_name is None or h.table_name == table.name)
        and (h.record_key is None or as_key_text(h.record_key, table.c[key_column]) == key)
        and (h.subject_id is None or (subject is not None and subject_column is not None
                                      and as_key_text(h.subject_id, table.c[subject_column]) == subject))
    )
