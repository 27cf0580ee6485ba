"""Legal holds: which are active now (by the wall clock), and a SQL predicate for rows they protect."""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import uuid
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.errors import InputError
from pipelines.store import column_kind, key_text
from pipelines.timestamps import as_utc

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
        released = release_instant(r.released_at)
        if released is not None and released <= now:
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


def release_instant(value: object) -> dt.datetime | None:
    """`released_at` as an aware instant (no zone = UTC); None for NULL and for anything that reads as no
    timestamp ('when the case closes', a number such as a Unix time on SQLite): such a hold keeps protecting.
    PostgreSQL's '-infinity' (read as that text, `pipelines.date_values`) is released; 'infinity' never is.
    """
    if value == "-infinity":
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return as_utc(value)


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


def as_number(value: str, column: sa.Column) -> int | decimal.Decimal | None:
    """A hold's value for a numeric column as the number it names (None when it names none).

    Numbers are compared as numbers, not as text: the text of a number depends on the database and the type
    that keep it (PostgreSQL's NUMERIC(12,2) writes -2.5 as -2.50, a SQLite vault's copy as -2.5), so a hold on a
    row moved to a vault on the other database matched the store's row but not its copy, which was released
    (erased) in the same run.
    """
    if column_kind(column) not in ("integer", "float"):
        return None
    try:
        number = decimal.Decimal(value.strip())
    except decimal.InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else number


def _matches(column: sa.Column, source: sa.Column, values: Collection[str]) -> sa.ColumnElement[bool]:
    """`column` (of the store's table, or of its vault copy) holds one of these hold values, as `source`, the store's
    column, says to compare them: numbers as numbers, anything else as text.
    """
    read = {v: as_number(v, source) for v in values}
    numbers = {n for n in read.values() if n is not None}
    texts = sorted({as_key_text(v, source) for v, n in read.items() if n is None})
    clauses = ([column.in_(sorted(numbers))] if numbers else []) + ([key_text(column).in_(texts)] if texts else [])
    return sa.and_(column.is_not(None), sa.or_(*clauses))


def held_predicate(holds: list[Hold], table_name: str, table: sa.Table, key: str,
                   subject: str | None, source: sa.Table | None = None) -> sa.ColumnElement[bool]:
    """True for rows of `table` protected by any hold (every non-NULL field of a hold must match). `source`: the
    store's table when `table` is its copy in the vault, whose column types say how to compare.
    """
    relevant = [h for h in holds if h.applies_to_table(table_name, subject is not None)]
    if not relevant:
        return sa.false()
    if any(h.subject_id is None and h.record_key is None for h in relevant):
        return sa.true()
    source = table if source is None else source

    def key_is(values: Collection[str]) -> sa.ColumnElement[bool]:
        return _matches(table.c[key], source.c[key], values)

    def subject_is(values: Collection[str]) -> sa.ColumnElement[bool]:
        return _matches(table.c[subject], source.c[subject], values)

    by_subject = {h.subject_id for h in relevant if h.subject_id and h.record_key is None}
    by_key = {h.record_key for h in relevant if h.record_key and h.subject_id is None}
    both = sorted({(h.subject_id, h.record_key) for h in relevant if h.subject_id and h.record_key})
    clauses = ([subject_is(by_subject)] if by_subject else []) + ([key_is(by_key)] if by_key else [])
    clauses.extend(sa.and_(subject_is([s]), key_is([k])) for s, k in both)
    return sa.or_(*clauses)


def _same(hold_value: str, row_value: object, column: sa.Column) -> bool:
    """A hold's value names this row's value (`held_predicate`'s comparison, in Python)."""
    if row_value is None:
        return False
    number = as_number(hold_value, column)
    if number is not None:
        try:
            return decimal.Decimal(str(row_value)) == number
        except decimal.InvalidOperation:
            return False
    return as_key_text(hold_value, column) == str(row_value)


def holds_matching(holds: list[Hold], table: sa.Table, row: dict, key: str, subject: str | None) -> list[str]:
    """The ids of the holds that protect one row of the store's `table` (for the vault's provenance column)."""
    return sorted(
        h.hold_id for h in holds
        if (h.table_name is None or h.table_name == table.name)
        and (h.record_key is None or _same(h.record_key, row[key], table.c[key]))
        and (h.subject_id is None or (subject is not None and _same(h.subject_id, row[subject], table.c[subject])))
    )
