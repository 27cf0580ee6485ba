"""Legal holds' segregated storage: move due rows under hold to the vault, and release them.

Store and vault are two databases with no shared transaction, so a move is copy, verify, delete,
and every step is re-entrant: a copy skips rows already in the vault with the same checksum, the
delete removes only rows whose vault copy verified. A crash anywhere loses no row and duplicates
none; the next run's discovery finds what is left and finishes it. A release records itself in the
store (ledger, marker, aggregate fold in one transaction) before it touches the vault, and a marker
makes a repeated release a no-op.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines import aggregates, faults, ledger, markers, tombstones
from pipelines.apply import DEFAULT_CHUNK, due_chunks, fold_targets
from pipelines.context import RunContext
from pipelines.date_values import LenientSqliteDate, LenientSqliteDateTime
from pipelines.discovery import predicates
from pipelines.frames import to_python
from pipelines.holds import held_predicate, holds_matching
from pipelines.store import enable_wal, key_in, reflect
from pipelines.widths import by_bytes, row_bytes

RELEASED = "released:"
# A vault chunk carries whole rows through Lethe (copy, then verify), so it stays smaller than apply's, and
# is split further by the rows' size (`widths`).
VAULT_CHUNK = min(DEFAULT_CHUNK, 20_000)  # marker namespace: vault rows whose release the store already recorded


def _canonical(value: object) -> object:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value.normalize())
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    return str(value)


def checksum(row: dict, columns: Sequence[str]) -> str:
    """SHA-256 of the row's values in column order, normalised so both databases agree."""
    body = json.dumps([[c, _canonical(row[c])] for c in columns], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def vault_table(source: sa.Table, key: str, same_dialect: bool) -> sa.Table:
    """The vault's copy of a source table: same column names, portable types, plus provenance."""
    cols = []
    for c in source.columns:
        typ = c.type if same_dialect else _portable(c.type)
        cols.append(sa.Column(c.name, typ, primary_key=(c.name == key), nullable=(c.name != key)))
    cols += [
        sa.Column("lethe_hold_ids", sa.String(1000), nullable=False),
        sa.Column("lethe_run_id", sa.String(80), nullable=False),
        sa.Column("lethe_moved_at", sa.DateTime, nullable=False),
        sa.Column("lethe_checksum", sa.String(64), nullable=False),
        sa.Column("lethe_due_action", sa.String(16), nullable=False),
        sa.Column("lethe_was_anonymized", sa.Boolean, nullable=False),
    ]
    return sa.Table(source.name, sa.MetaData(), *cols)


def _portable(typ: sa.types.TypeEngine) -> sa.types.TypeEngine:
    """A type the other database can hold the value in, read back as the same canonical value.

    A UUID becomes its hyphenated text (holds name keys and subjects as text; a generic Uuid on
    SQLite would be 32 bare hex digits, matching no hold); an array becomes JSON (only PostgreSQL
    has arrays); dates and timestamps keep values Python cannot hold as they are; types with no generic
    form (inet, cidr, macaddr, ...) become their text form.
    """
    if isinstance(typ, sa.Uuid):
        return sa.String(36)
    if isinstance(typ, sa.ARRAY):
        return sa.JSON(none_as_null=True)
    # a value held as stored (PostgreSQL's infinity, SQLite's loose text) crosses as it is; on PostgreSQL
    # these are plain DATE and TIMESTAMP
    if isinstance(typ, sa.DateTime):
        return LenientSqliteDateTime(timezone=typ.timezone)
    if isinstance(typ, sa.Date):
        return LenientSqliteDate()
    try:
        return typ.as_generic()
    except NotImplementedError:
        return sa.Text()


def _to_vault(value: object, column: sa.Column, dialect: str) -> object:
    """A store value as the vault column holds it: an aware timestamp as naive UTC unless the column
    keeps zones (SQLite's DATETIME would keep the wall time and drop the offset, another instant);
    a non-text value bound for a text column (UUID, IP address) as its text.
    """
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        if not (dialect == "postgresql" and getattr(column.type, "timezone", False)):
            return value.astimezone(dt.UTC).replace(tzinfo=None)
    if value is not None and not isinstance(value, str) and isinstance(column.type, sa.String):
        return str(value)
    return value


def _to_store(value: object, column: sa.Column) -> object:
    """A vault value back in the store column's terms: naive UTC for a zoned column as an aware UTC
    instant (not the session's zone), a UUID's text as a UUID.
    """
    if isinstance(value, dt.datetime) and value.tzinfo is None and getattr(column.type, "timezone", False):
        return value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and isinstance(column.type, sa.Uuid) and getattr(column.type, "as_uuid", True):
        return uuid.UUID(value)
    return value


def ensure_vault_table(ctx: RunContext, name: str) -> sa.Table:
    table = vault_table(ctx.tables[name], ctx.policy.tables[name].key,
                        ctx.vault.dialect.name == ctx.dialect)
    enable_wal(ctx.vault)
    table.metadata.create_all(ctx.vault)
    return table


def existing_vault_table(ctx: RunContext, name: str) -> sa.Table | None:
    if not ctx.has_vault():
        return None
    url = sa.engine.make_url(ctx.vault_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return None  # looking must not create an empty vault file (a dry run writes nothing)
    if not sa.inspect(ctx.vault).has_table(name):
        return None
    return reflect(ctx.vault, [name])[name]


@dataclass
class VaultCounts:
    moved: int = 0
    released_erased: int = 0
    released_returned: int = 0
    folded: dict[str, int] = field(default_factory=dict)

    @property
    def released(self) -> int:
        return self.released_erased + self.released_returned


def move_held(ctx: RunContext, name: str, chunk_size: int = VAULT_CHUNK) -> int:
    """Move every due row of `name` under an active hold to the vault; returns rows moved."""
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    p = predicates(ctx, name)
    key = table.c[rule.key]
    cond = sa.and_(p.due, p.held)
    with ctx.store.connect() as conn:
        if not conn.execute(sa.select(sa.exists().where(cond).select_from(table))).scalar():
            return 0
    markers.ensure(ctx.store)
    ledger.ensure(ctx.store)
    vtable = ensure_vault_table(ctx, name)
    columns = list(table.c.keys())
    moved = 0
    due = sa.select(key, p.action(), row_bytes(table.columns, ctx.dialect)).where(cond).order_by(key)
    for chunk in due_chunks(ctx, due, key, chunk_size):
        for batch in by_bytes(chunk, max_rows=chunk_size):
            moved += _move_chunk(ctx, name, vtable, columns, batch)
    return moved


def _move_chunk(ctx: RunContext, name: str, vtable: sa.Table, columns: list[str],
                chunk: list[tuple[object, str]]) -> int:
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    actions = {k: a for k, a in chunk}
    keys = list(actions)
    with ctx.store.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(table).where(key_in(table.c[rule.key], keys))).mappings()]
        was_anonymized = markers.marked_keys(conn, name, table, rule.key, keys)
    # the vault may hold a key differently (a UUID as text): vault-side work goes by the vault's form
    dialect = ctx.vault.dialect.name
    in_vault = {r[rule.key]: _to_vault(r[rule.key], vtable.c[rule.key], dialect) for r in rows}
    in_store = {v: k for k, v in in_vault.items()}
    sums = {in_vault[r[rule.key]]: checksum(r, columns) for r in rows}
    vkeys = list(sums)
    # 1. copy (skipping rows already copied intact by an earlier, interrupted run)
    with ctx.vault.begin() as vconn:
        present = {r[0]: r[1] for r in vconn.execute(
            sa.select(vtable.c[rule.key], vtable.c.lethe_checksum).where(vtable.c[rule.key].in_(vkeys)))}
        stale = [k for k, s in present.items() if sums.get(k) != s]
        if stale:
            vconn.execute(sa.delete(vtable).where(vtable.c[rule.key].in_(stale)))
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        new = [
            {**{c: _to_vault(r[c], vtable.c[c], dialect) for c in columns},
             "lethe_hold_ids": ",".join(holds_matching(ctx.holds, table, r, rule.key, rule.subject)),
             "lethe_run_id": ctx.run_id, "lethe_moved_at": now, "lethe_checksum": sums[in_vault[r[rule.key]]],
             "lethe_due_action": actions[r[rule.key]], "lethe_was_anonymized": r[rule.key] in was_anonymized}
            for r in rows if in_vault[r[rule.key]] not in present or in_vault[r[rule.key]] in stale
        ]
        if new:
            vconn.execute(vtable.insert(), new)
    faults.checkpoint("vault.after_copy")
    # 2. verify: the vault copy must hash to the store row's checksum
    with ctx.vault.connect() as vconn:
        copies = [dict(r) for r in vconn.execute(sa.select(vtable).where(vtable.c[rule.key].in_(vkeys))).mappings()]
    verified = [in_store[c[rule.key]] for c in copies
                if checksum(c, columns) == c["lethe_checksum"] == sums.get(c[rule.key])]
    faults.checkpoint("vault.after_verify")
    # 3. delete from the store, only what verified, in halves (each half its own transaction)
    moved = 0
    half = max(1, (len(verified) + 1) // 2)
    for i in range(0, len(verified), half):
        batch = verified[i:i + half]
        with ctx.store.begin() as conn:
            markers.unmark_where(conn, name, table, rule.key, key_in(table.c[rule.key], batch))
            n = conn.execute(sa.delete(table).where(key_in(table.c[rule.key], batch))).rowcount
            ledger.append(conn, ctx.run_id, name, "move_to_vault", n, ledger.keys_digest(ctx.ledger_key, batch))
        moved += n
        faults.checkpoint("vault.mid_delete")
    return moved


def release(ctx: RunContext, name: str, chunk_size: int = VAULT_CHUNK) -> VaultCounts:
    """Vault rows of `name` no longer under any active hold get the action they were due for."""
    counts = VaultCounts()
    found = _unheld(ctx, name)
    if found is None:
        return counts
    vtable, unheld = found
    key = vtable.c[ctx.policy.tables[name].key]
    with ctx.vault.connect() as vconn:  # keys and sizes first: the rows themselves one batch at a time
        sized = vconn.execute(sa.select(key, row_bytes(vtable.columns, ctx.vault.dialect.name)).where(unheld)
                              .order_by(key)).all()
    markers.ensure(ctx.store)
    ledger.ensure(ctx.store)
    tombstones.ensure(ctx.store)
    folds = fold_targets(ctx, name)
    for batch in by_bytes(sized, max_rows=chunk_size):
        with ctx.vault.connect() as vconn:
            chunk = [dict(r) for r in vconn.execute(
                sa.select(vtable).where(key_in(key, [k for (k,) in batch])).order_by(key)).mappings()]
        e, r = _release_chunk(ctx, name, vtable, chunk, folds, counts.folded)
        counts.released_erased += e
        counts.released_returned += r
    return counts


def releasable(ctx: RunContext, name: str, chunk_size: int = VAULT_CHUNK) -> VaultCounts:
    """What `release` would do now, read-only: a dry run's counts of vault rows no longer held, by the
    action they were due for, and the folds of those not folded before (never anonymized). Like `release`,
    it leaves out copies whose release is already recorded or whose store row is still there.
    """
    counts = VaultCounts()
    found = _unheld(ctx, name)
    if found is None:
        return counts
    vtable, unheld = found
    rule = ctx.policy.tables[name]
    with ctx.vault.connect() as vconn:
        rows = [dict(r) for r in vconn.execute(
            sa.select(vtable.c[rule.key], vtable.c.lethe_due_action, vtable.c.lethe_was_anonymized)
            .where(unheld)).mappings()]
    aggregates_of_table = [a for a, agg in ctx.policy.aggregates.items() if agg.from_table == name]
    recorded = markers.exists(ctx.store)  # a dry run before any real run: no release recorded anywhere
    with ctx.store.connect() as conn:
        for i in range(0, len(rows), chunk_size):
            chunk = rows[i:i + chunk_size]
            skip = _still_in_store(conn, ctx, name, chunk)
            if recorded:
                skip |= _released_already(conn, name, chunk, rule.key)
            for r in chunk:
                if str(r[rule.key]) in skip:
                    continue
                if r["lethe_due_action"] == "erase":
                    counts.released_erased += 1
                else:
                    counts.released_returned += 1
                if not r["lethe_was_anonymized"]:  # rows anonymized before they were held were folded then
                    for agg_name in aggregates_of_table:
                        counts.folded[agg_name] = counts.folded.get(agg_name, 0) + 1
    return counts


def _unheld(ctx: RunContext, name: str) -> tuple[sa.Table, sa.ColumnElement[bool]] | None:
    """The vault's copy of `name` and the condition on its rows that no active hold protects any more
    (None when the vault has no such table).
    """
    vtable = existing_vault_table(ctx, name)
    if vtable is None:
        return None
    rule = ctx.policy.tables[name]
    return vtable, sa.not_(held_predicate(ctx.holds, name, vtable, rule.key, rule.subject, ctx.tables[name]))


def _release_chunk(ctx: RunContext, name: str, vtable: sa.Table, rows: list[dict], folds: list,
                   folded: dict[str, int]) -> tuple[int, int]:
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    keys = [r[rule.key] for r in rows]
    source_cols = list(table.c.keys())
    with ctx.store.begin() as conn:
        done = _released_already(conn, name, rows, rule.key)
        todo = [r for r in rows if str(r[rule.key]) not in done]
        orphans = _still_in_store(conn, ctx, name, todo)
        todo = [r for r in todo if str(r[rule.key]) not in orphans]
        erase = [r for r in todo if r["lethe_due_action"] == "erase"]
        back = [r for r in todo if r["lethe_due_action"] != "erase"]
        fold_keys = [r for r in todo if not r["lethe_was_anonymized"]]
        if fold_keys and folds:
            ledger.serialize(conn)
            _fold_released(conn, ctx, [r[rule.key] for r in fold_keys], fold_keys, folds, folded)
        if back:
            _return_anonymized(conn, ctx, name, table, source_cols, back)
        if tombstones.is_subjects_table(ctx, name):  # the vault row was the deletion's last record
            s = ctx.policy.subjects
            for group, anonymizing in ((erase, False), (back, True)):
                tombstones.record_released(conn, ctx, name, [(_to_store(r[s.id], table.c[s.id]), r[s.deleted_at])
                                                             for r in group], anonymizing=anonymizing)
        for action, group in (("release_erase", erase), ("release_anonymize", back)):
            if group:
                gk = [g[rule.key] for g in group]
                ledger.append(conn, ctx.run_id, name, action, len(group), ledger.keys_digest(ctx.ledger_key, gk))
        markers.mark(conn, RELEASED + name, [r[rule.key] for r in todo], ctx.run_id)
    faults.checkpoint("release.after_return")
    with ctx.vault.begin() as vconn:
        vconn.execute(sa.delete(vtable).where(vtable.c[rule.key].in_(keys)))
    with ctx.store.begin() as conn:
        markers.unmark(conn, RELEASED + name, keys)
    return len(erase), len(back)


def _released_already(conn: Connection, name: str, rows: list[dict], key: str) -> set[str]:
    """Keys (as text) whose release the store already recorded: a release killed before its vault delete."""
    if not rows:
        return set()
    return set(conn.execute(sa.select(markers.ANONYMIZED.c.row_key).where(
        markers.ANONYMIZED.c.table_name == RELEASED + name,
        markers.ANONYMIZED.c.row_key.in_([str(r[key]) for r in rows]))).scalars())


def _still_in_store(conn: Connection, ctx: RunContext, name: str, rows: list[dict]) -> set[str]:
    """Keys (as text) of vault rows whose store row is still there: a move killed after its copy and before
    its delete (a completed move deletes the store row; a completed release is marked done). The vault row
    is only a copy then: releasing it would fold and record the row here while the store row, still due,
    gets its own action in the apply step. Such a copy is dropped from the vault without any other effect,
    even if the store row changed since it was copied: the store row is the one that counts.
    """
    if not rows:
        return set()
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    key = table.c[rule.key]
    keys = [_to_store(r[rule.key], key) for r in rows]
    return {str(k) for k in conn.execute(sa.select(key).where(key_in(key, keys))).scalars()}


def _fold_released(conn: Connection, ctx: RunContext, keys: list, rows: list[dict], folds: list,
                   folded: dict[str, int]) -> None:
    for agg_name, agg, agg_table, agg_ops in folds:
        data = {}
        for dim, spec in agg.dimensions.items():
            values = pd.Series([r[spec["column"]] for r in rows], dtype=object)
            data[dim] = agg_ops[dim].apply(values) if dim in agg_ops else values
        n = aggregates.fold(conn, agg_table, pd.DataFrame(data))
        folded[agg_name] = folded.get(agg_name, 0) + n
        ledger.append(conn, ctx.run_id, agg_name, "fold", n,
                      ledger.keys_digest(ctx.ledger_key, keys))


def _return_anonymized(conn: Connection, ctx: RunContext, name: str, table: sa.Table, source_cols: list[str],
                       rows: list[dict]) -> None:
    """Insert the rows back into the store, anonymized (every operator through its pandas path)."""
    rule = ctx.policy.tables[name]
    rows = [{c: _to_store(r[c], table.c[c]) for c in source_cols} for r in rows]
    existing = set(conn.execute(sa.select(table.c[rule.key]).where(
        table.c[rule.key].in_([r[rule.key] for r in rows]))).scalars())
    fresh = [r for r in rows if r[rule.key] not in existing]
    if not fresh:
        return
    frame = pd.DataFrame(fresh, dtype=object)
    subjects = frame[rule.subject] if rule.subject else None
    for col, op in ctx.operators[name].items():
        if op.name != "keep":
            frame[col] = op.apply(frame[col], subjects)
    records = [{c: _to_store(to_python(v), table.c[c]) for c, v in zip(frame.columns, rec, strict=True)}
               for rec in frame.itertuples(index=False, name=None)]
    conn.execute(table.insert(), records)
    markers.mark_rows(conn, name, table, rule.key, [r[rule.key] for r in fresh], ctx.run_id)

