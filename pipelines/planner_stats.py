"""Fresh planner statistics, on PostgreSQL, for the tables a run changed in bulk, before verification reads them.

Verification reads the due range right after the apply step. With the statistics from before a mass
erase the planner expects a third of the table to match and walks the timestamp index, fetching every
deleted row's heap tuple one by one: 6.3 s at 10M rows after erasing 3.77M, against 1.5 s once ANALYZEd
(0.25 s) (benchmarks/README.md). A table is ANALYZEd when the rows changed since its last ANALYZE pass
autovacuum's own threshold (50 rows + 10% of the table), rather than whenever autovacuum wakes up.

The ANALYZEs run on a background connection while verification loads Great Expectations: ANALYZE is the
database server's work and the import is Lethe's, so on two cores they overlap instead of adding up
(PostgreSQL 1M: 0.3-0.4 s of ANALYZE taken off the run).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping

import sqlalchemy as sa

from pipelines.context import RunContext

_STALE = sa.text("SELECT greatest(coalesce(s.n_mod_since_analyze, 0), :changed) "
                 "> 50 + 0.1 * greatest(c.reltuples, 0) "
                 "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                 "WHERE c.oid = CAST(:name AS regclass)")


def stale_tables(ctx: RunContext, changed: Mapping[str, int]) -> list[str]:
    """Policy tables past autovacuum's ANALYZE threshold. `changed` counts this run's rows per table, which
    the statistics view may not show yet (backends report at most once a second); the view adds what
    other processes (the DAG's apply tasks) changed.
    """
    if ctx.dialect != "postgresql":
        return []
    out = []
    with ctx.store.connect() as conn:
        for name in ctx.policy.table_order():
            qualified = ctx.store.dialect.identifier_preparer.format_table(ctx.tables[name])
            if conn.execute(_STALE, {"name": qualified, "changed": int(changed.get(name, 0))}).scalar():
                out.append(qualified)
    return out


def refresh(ctx: RunContext, changed: Mapping[str, int]) -> None:
    """ANALYZE each policy table whose changes passed the threshold."""
    for qualified in stale_tables(ctx, changed):
        with ctx.store.begin() as conn:
            conn.execute(sa.text(f"ANALYZE {qualified}"))


@contextlib.contextmanager
def refreshing(ctx: RunContext, changed: Mapping[str, int]) -> Iterator[None]:
    """`refresh` on a background thread for the duration of the block; leaving the block waits for it
    and raises what it raised, so nothing after the block plans with stale statistics.
    """
    failure: list[BaseException] = []

    def work() -> None:
        try:
            refresh(ctx, changed)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=work, name="lethe-analyze", daemon=True)
    worker.start()
    try:
        yield
    finally:
        worker.join()
    if failure:
        raise failure[0]
