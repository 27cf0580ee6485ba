"""Erase or anonymize the due rows of one table, chunk by chunk, each chunk one transaction.

Two kinds of chunk (`reads_keys` picks one per table). A range chunk (PostgreSQL) is a key range
holding up to `chunk_size` due rows, found with one short read by the key's index; it is one UPDATE
with the operators' SQL forms and one DELETE, each restricted to the range and the due predicate, the
database marking the rows and digesting their keys for the ledger: set-based like hand-written SQL,
no key travels. A key chunk (SQLite; tables that fold aggregates or run pandas-only operators) reads
the next `chunk_size` due keys inside its transaction and works by that key list. Either way memory
does not grow with the table, and a killed run leaves each chunk done or untouched; the next run's
discovery finds exactly what is left.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anonymizers import OperatorContext
from pipelines import aggregates, faults, ledger, lock, markers, tombstones
from pipelines.context import RunContext
from pipelines.discovery import TablePredicates, predicates
from pipelines.frames import ROW_BATCH, read_rows, write_back
from pipelines.store import connect, key_in, key_ranges
from pipelines.widths import by_bytes, row_bytes, wide

# Rows per transaction. Large, because on SQLite every commit rewrites each index page its chunk touched,
# and a chunk's deletes land all over a timestamp or subject index: at 10M rows the apply step took 89 s
# with 20,000-row chunks, 65 s with 50,000 and 55 s with 100,000, against 63 s for one unchunked DELETE
# (benchmarks/README.md). PostgreSQL's range chunks cost the same at any of these sizes. A chunk holds at
# most its keys (and, for pandas operators, those columns) in memory.
DEFAULT_CHUNK = int(os.environ.get("LETHE_CHUNK_SIZE", "100000"))
T = TypeVar("T")


@dataclass
class TableCounts:
    erased: int = 0
    anonymized: int = 0
    folded: dict[str, int] = field(default_factory=dict)

    def add(self, other: TableCounts) -> None:
        self.erased += other.erased
        self.anonymized += other.anonymized
        for k, v in other.folded.items():
            self.folded[k] = self.folded.get(k, 0) + v


def _pgcrypto(ctx: RunContext) -> bool:
    """Whether the operators' SQL forms can call pgcrypto (hmac) by its bare name: installed, in a schema on
    the session's search_path. A store whose URL sets search_path to its own schema leaves out `public`, where
    the extension usually is: every chunk failed (UndefinedFunction); Lethe anonymizes in pandas then.
    """
    if ctx.dialect != "postgresql":
        return True
    with ctx.store.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT 1 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pgcrypto' AND n.nspname = ANY(current_schemas(false))")).scalar())


def split_operators(ctx: RunContext, name: str, pushdown: bool = True) -> tuple[dict, dict]:
    """Columns whose operator has a SQL form for this dialect, and the rest (pandas)."""
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    subject = table.c[rule.subject] if rule.subject else None
    in_sql, in_pandas = {}, {}
    sql_ok = pushdown and _pgcrypto(ctx)
    for col, op in ctx.operators[name].items():
        if op.name == "keep":
            continue
        expr = op.sql(table.c[col], ctx.dialect, subject) if sql_ok else None
        if expr is not None:
            in_sql[col] = expr
        else:
            in_pandas[col] = op
    return in_sql, in_pandas


def anonymize_rows(conn: Connection, ctx: RunContext, name: str, keys: Sequence[object],
                   in_sql: dict[str, Any], in_pandas: dict[str, Any]) -> None:
    """Anonymize the rows with these keys; where pandas reads columns that can hold large values (a ticket's
    body to fake), a batch of them bounded in bytes at a time (`widths`), all in the caller's transaction.
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    read = [table.c[c] for c in dict.fromkeys([*in_pandas, *([rule.subject] if rule.subject else [])])]
    if not in_pandas or not wide(read):
        _anonymize_batch(conn, ctx, name, keys, in_sql, in_pandas)
        return
    key = table.c[rule.key]
    sized = conn.execute(sa.select(key, row_bytes(read, ctx.dialect)).where(key_in(key, keys)).order_by(key)).all()
    for batch in by_bytes(sized, max_rows=len(keys)):
        _anonymize_batch(conn, ctx, name, [k for (k,) in batch], in_sql, in_pandas)


def _anonymize_batch(conn: Connection, ctx: RunContext, name: str, keys: Sequence[object],
                     in_sql: dict[str, Any], in_pandas: dict[str, Any]) -> None:
    """Anonymize the rows with these keys: pandas reads first (they may need the original subject)."""
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    new_values = {}
    if in_pandas:
        extra = [rule.subject] if rule.subject else []
        frame = read_rows(conn, table, rule.key, keys, list(in_pandas) + extra)
        subjects = frame[rule.subject] if rule.subject else None
        new_values = {col: op.apply(frame[col], subjects) for col, op in in_pandas.items()}
        keys = list(frame[rule.key])
    if in_sql:
        conn.execute(sa.update(table).where(key_in(table.c[rule.key], keys)).values(in_sql))
    write_back(conn, table, rule.key, keys, new_values)


def fold_targets(ctx: RunContext, name: str) -> list[tuple[str, Any, sa.Table, dict]]:
    """Aggregates folded from this table, with their tables (created if absent) and operators."""
    op_ctx = OperatorContext(key=ctx.key, key_id=ctx.policy.pseudonymization.key_id)
    out = []
    for agg_name, agg in ctx.policy.aggregates.items():
        if agg.from_table == name:
            table = aggregates.ensure(ctx.store, agg_name, agg, ctx.tables[name])
            out.append((agg_name, agg, table, aggregates.operators(agg, op_ctx)))
    return out


def changed_rows(conn: Connection, ctx: RunContext, name: str, dml: sa.Update | sa.Delete, *,
                 mark: bool) -> tuple[int, str]:
    """Run one UPDATE or DELETE on table `name` in PostgreSQL; return how many rows it changed and
    their keys' ledger digest, marking them anonymized when `mark`.

    One statement: RETURNING feeds a CTE that the server digests (and marks from), so no key travels
    to Lethe.
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    done = dml.returning(table.c[rule.key]).cte("lethe_done")
    query = sa.select(sa.func.count(), ledger.keys_digest_sql(ctx.ledger_key, done.c[rule.key]))
    if mark:
        query = query.add_cte(markers.mark_from(name, done.c[rule.key], ctx.run_id).cte("lethe_marked"))
    count, digest = conn.execute(query).one()
    return int(count), digest


def reads_keys(ctx: RunContext, name: str, ops: tuple[dict, dict], folds: list) -> bool:
    """Whether this table's chunks read their keys into Lethe instead of being set-based statements.

    Needed to fold aggregates from exactly the rows a chunk then changes, and to anonymize columns in
    pandas. Chosen on SQLite anyway: in-process, reading keys costs nothing while evaluating the due
    predicate (julianday() per row) twice, to find a range and then inside it, costs a quarter more
    (measured in benchmarks/README.md). Over a network, PostgreSQL is the other way round.
    """
    in_sql, in_pandas = ops
    return bool(ctx.dialect != "postgresql" or folds or in_pandas
                or (ctx.policy.tables[name].anonymizes and not in_sql))


def range_chunk(ctx: RunContext, name: str, p: TablePredicates, where: sa.ColumnElement[bool],
                in_sql: dict) -> TableCounts:
    """One transaction, set-based: anonymize (marking) and erase the due rows matching `where`."""
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    counts = TableCounts()
    with ctx.store.begin() as conn:
        if rule.anonymizes:
            tombstones.record_lost(conn, ctx, name, sa.and_(where, p.anonymize), anonymizing=True)
            update = sa.update(table).where(where, p.anonymize).values(in_sql)
            counts.anonymized, digest = changed_rows(conn, ctx, name, update, mark=True)
            if counts.anonymized:
                ledger.append(conn, ctx.run_id, name, "anonymize", counts.anonymized, digest)
        if rule.erases:
            counts.erased = erase_rows(conn, ctx, name, sa.and_(where, p.erase))
    return counts


def key_chunk(ctx: RunContext, name: str, p: TablePredicates, scope: list, after: object, chunk_size: int,
              ops: tuple[dict, dict], folds: list) -> tuple[TableCounts, object]:
    """One transaction over the next `chunk_size` due keys after `after`, read inside it: fold, anonymize,
    mark, erase by key list. Returns the counts and the last key (None when nothing was left).
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    key = table.c[rule.key]
    counts = TableCounts()
    with ctx.store.begin() as conn:
        page = sa.select(key, p.action()).where(p.due, *scope, *([key > after] if after is not None else []))
        erase, anonymize, last = [], [], None
        for part in conn.execute(page.order_by(key).limit(chunk_size)).partitions(ROW_BATCH):
            for k, action in part:  # no list of a whole chunk's row objects (frames.ROW_BATCH)
                (erase if action == "erase" else anonymize).append(k)
            last = part[-1][0]
        if last is None:
            return counts, None
        if folds:
            counts.folded = fold_chunk(conn, ctx, name, folds, erase, anonymize)
        if anonymize:
            tombstones.record_lost(conn, ctx, name, key_in(key, anonymize), anonymizing=True)
            anonymize_rows(conn, ctx, name, anonymize, *ops)
            markers.mark_rows(conn, name, table, rule.key, anonymize, ctx.run_id)
            ledger.append(conn, ctx.run_id, name, "anonymize", len(anonymize),
                          ledger.keys_digest(ctx.ledger_key, anonymize))
            counts.anonymized = len(anonymize)
            if anonymizing_may_expire(ctx, name):  # as a range chunk's DELETE after its UPDATE would find them
                erase += conn.execute(sa.select(key).where(key_in(key, anonymize), p.erase)).scalars().all()
        if erase:
            counts.erased = erase_rows(conn, ctx, name, key_in(key, erase), keys=erase)
    return counts, last


def anonymizing_may_expire(ctx: RunContext, name: str) -> bool:
    """Whether anonymizing a row may make it due for erasure: a row anonymized for its deleted subject whose
    `retain.from` column the policy anonymizes too (shift_date, generalize_date, fake) can land before the
    retention cutoff, where `when_expired: erase`, the stronger action, applies. A key chunk decides its
    rows' actions before it changes them, so it looks again at the rows it anonymized (in the same
    transaction); a range chunk's DELETE already runs after its UPDATE.
    """
    rule = ctx.policy.tables[name]
    if rule.retain is None or rule.when_expired != "erase" or rule.when_subject_deleted != "anonymize":
        return False
    op = ctx.operators.get(name, {}).get(rule.retain.from_column)
    return op is not None and op.name not in ("keep", "redact")  # NULL never falls due


def erase_rows(conn: Connection, ctx: RunContext, name: str, where: sa.ColumnElement[bool],
               keys: list | None = None) -> int:
    """Delete the rows matching `where` (forgetting their markers first) and record it in the ledger;
    `keys` when the chunk already holds them, else the database digests what it deleted. Subjects still
    inside their grace period keep a tombstone, written first in the same transaction, so their other
    rows fall due once it is over.
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    tombstones.record_lost(conn, ctx, name, where)  # a no-op for tables other than the subjects table
    if rule.anonymizes:  # only a table that anonymizes can hold markers to forget
        markers.unmark_where(conn, name, table, rule.key, where)
    if keys is None:
        erased, digest = changed_rows(conn, ctx, name, sa.delete(table).where(where), mark=False)
    else:
        erased, digest = conn.execute(sa.delete(table).where(where)).rowcount, ledger.keys_digest(ctx.ledger_key, keys)
    if erased:
        ledger.append(conn, ctx.run_id, name, "erase", erased, digest)
    return erased


def fold_chunk(conn: Connection, ctx: RunContext, name: str, folds: list, erase: list, anonymize: list) -> dict:
    """Fold the chunk's rows into the aggregates before they change: anonymized rows, and erased rows
    that were not already folded when they were anonymized (a row is folded exactly once).
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    ledger.serialize(conn)  # aggregate upserts from parallel partitions must not interleave
    marked = markers.marked_keys(conn, name, table, rule.key, erase)
    to_fold = anonymize + [k for k in erase if k not in marked]
    folded = {}
    for agg_name, agg, agg_table, agg_ops in folds:
        frame = aggregates.dimension_frame(conn, table, rule.key, to_fold, agg, agg_ops)
        n = aggregates.fold(conn, agg_table, frame)
        if n:
            ledger.append(conn, ctx.run_id, agg_name, "fold", n, ledger.keys_digest(ctx.ledger_key, to_fold))
            folded[agg_name] = n
    return folded


def key_bounds(ctx: RunContext, name: str, partitions: int) -> list[tuple[object, object]]:
    """Split the due rows' keys into `partitions` contiguous ranges (lo exclusive, hi inclusive) for
    parallel workers; ranges are disjoint, so workers never touch the same row.
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    p = predicates(ctx, name)
    key = table.c[rule.key]
    cond = sa.and_(p.due, sa.not_(p.held))
    with ctx.store.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)).scalar_one()
        if total == 0:
            return []
        step = max(1, -(-total // max(1, partitions)))
        numbered = sa.select(key.label("k"), sa.func.row_number().over(order_by=key).label("n")).where(cond)
        sub = numbered.subquery()
        cuts = conn.execute(sa.select(sub.c.k).where(sa.or_((sub.c.n % step) == 0, sub.c.n == total))
                            .order_by(sub.c.k)).scalars().all()
    bounds, lo = [], None
    for hi in cuts:
        bounds.append((lo, hi))
        lo = hi
    return bounds


def apply_table(ctx: RunContext, name: str, *, key_range: tuple[object, object] | None = None,
                chunk_size: int = DEFAULT_CHUNK, pushdown: bool = True, expected: int | None = None) -> TableCounts:
    """Erase or anonymize every due, unheld row of `name` (within `key_range` when given); `expected`, the
    plan's count of them, lets range chunks split a table of fewer than `workers` chunks evenly.
    """
    rule, table = ctx.policy.tables[name], ctx.tables[name]
    markers.ensure(ctx.store)
    ledger.ensure(ctx.store)
    p = predicates(ctx, name)
    key = table.c[rule.key]
    scope = [sa.not_(p.held)]
    if key_range is not None:
        lo, hi = key_range
        if lo is not None:
            scope.append(key > lo)
        if hi is not None:
            scope.append(key <= hi)
    ops = split_operators(ctx, name, pushdown)
    folds = fold_targets(ctx, name)
    total, analyzed = TableCounts(), 0  # rows this call had marked at the last ANALYZE
    size = chunk_size if reads_keys(ctx, name, ops, folds) else range_chunk_size(chunk_size, expected, ctx.workers)
    for n, counts in enumerate(chunks(ctx, name, p, scope, size, ops, folds), start=1):
        total.add(counts)
        faults.checkpoint("apply.chunk")
        faults.checkpoint(f"apply.chunk.{name}")
        if n % 20 == 0:
            lock.heartbeat(ctx.store, ctx.run_id)
        # in whole chunks, not a worker's smaller share: each ANALYZE is 10-25 ms on the critical path
        if total.anonymized >= max(chunk_size, 2 * analyzed):
            analyze_markers(ctx)
            analyzed = total.anonymized
    if total.anonymized > analyzed:
        analyze_markers(ctx)  # for the next run's discovery and this run's verification
    return total


def range_chunk_size(chunk_size: int, expected: int | None, workers: int) -> int:
    """Range chunks of at most `chunk_size` rows, but no more than a worker's share of the `expected` rows:
    a table of 50,000 due rows would otherwise be one chunk on one of the server's cores. PostgreSQL's range
    chunks cost the same per row from 20,000 rows up (benchmarks/README.md); below 1,000 they would not.
    """
    if workers <= 1 or not expected:
        return chunk_size
    return max(min(chunk_size, 1_000), min(chunk_size, -(-expected // workers)))


def analyze_markers(ctx: RunContext) -> None:
    """Fresh marker statistics on PostgreSQL, each time this table's markers doubled in the run.

    Every due-row query anti-joins the markers. While the planner believes the table empty (it was
    just created, or autovacuum has not caught up), it hash-joins or nested-loops over every marker:
    at 10M rows one chunk's bound query took 38 s instead of 0.08 s (benchmarks/README.md). With
    statistics it probes the primary key. Doubling keeps the ANALYZEs to log2 of the rows marked.
    """
    if ctx.dialect == "postgresql":
        with ctx.store.begin() as conn:
            conn.execute(sa.text("ANALYZE lethe_anonymized"))


def chunks(ctx: RunContext, name: str, p: TablePredicates, scope: list, chunk_size: int, ops: tuple[dict, dict],
           folds: list) -> Iterator[TableCounts]:
    """Process the table's due rows within `scope` chunk after chunk, each chunk one committed transaction."""
    if reads_keys(ctx, name, ops, folds):
        after = None
        while True:
            counts, after = key_chunk(ctx, name, p, scope, after, chunk_size, ops, folds)
            if after is None:
                return
            yield counts
    key = ctx.tables[name].c[ctx.policy.tables[name].key]
    ranges = chunk_ranges(ctx, key, sa.and_(p.due, *scope), chunk_size)
    yield from concurrently(lambda in_range: range_chunk(ctx, name, p, sa.and_(in_range, *scope), ops[0]),
                            ranges, ctx.workers)


def concurrently(work: Callable[[T], TableCounts], items: Iterator[T], workers: int) -> Iterator[TableCounts]:
    """`work` over `items` on up to `workers` threads, yielding each result as it completes.

    Range chunks are disjoint, each its own transaction on its own connection, and the server does all
    the work (no key travels), so concurrent chunks use the database's cores where one statement uses
    one: PostgreSQL 15 runs no DML in parallel. Ledger appends stay in order under the store's append
    lock (`ledger.serialize`), taken only after a chunk's statements. `items` is read on this thread, one
    ahead of the pool, so the next range's bound is read while the workers run; it is read lazily, and
    no worker touches a row beyond the last bound handed out, so each bound still sees the table as it
    is. On a failure no new chunk starts; chunks under way finish (or roll back) before it is raised.
    """
    if workers <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lethe-chunk") as pool:
        pending: set[Future] = set()
        try:
            for item in items:
                pending.add(pool.submit(work, item))
                if len(pending) > workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        finally:
            for f in pending:
                f.cancel()


def chunk_ranges(ctx: RunContext, key: sa.Column, due: sa.ColumnElement[bool],
                 chunk_size: int) -> Iterator[sa.ColumnElement[bool]]:
    """Consecutive key ranges `lo < key <= hi`, each holding `chunk_size` rows matching `due` when found
    (`store.key_ranges`). The chunk's statements re-evaluate the due predicate inside the range, so rows
    that became due meanwhile are not missed and rows already done are not touched twice.
    """
    for lo, hi in key_ranges(ctx.store, key, due, chunk_size):
        yield sa.and_(sa.true(), *([key > lo] if lo is not None else []), *([key <= hi] if hi is not None else []))


def due_chunks(ctx: RunContext, query: sa.Select, key: sa.Column, chunk_size: int) -> Iterator[list[tuple]]:
    """The rows of `query` (ordered by `key`) in chunks, without holding one snapshot for the whole table.

    PostgreSQL streams a server-side cursor on its own connection. SQLite re-reads after the last key
    for every chunk: a reader that outlives many write transactions keeps the WAL from being
    checkpointed, and at 10M rows the WAL grew to ten times the database.
    """
    if ctx.dialect == "sqlite":
        last = None
        while True:
            page = query.limit(chunk_size) if last is None else query.where(key > last).limit(chunk_size)
            with ctx.store.connect() as conn:
                rows = [tuple(r) for r in conn.execute(page)]
            if not rows:
                return
            yield rows
            last = rows[-1][0]
    reader = connect(ctx.store_url, writer=False)
    try:
        with reader.connect() as rconn:
            result = rconn.execution_options(stream_results=True, yield_per=chunk_size).execute(query)
            for part in result.partitions(chunk_size):
                yield [tuple(r) for r in part]
    finally:
        reader.dispose()
