"""Verification after a run: checks derived from the policy, run in the database.

Results are name, success and unexpected count only: never a value from the data.
"""

from __future__ import annotations

import sqlalchemy as sa

from pipelines import ledger
from pipelines.context import RunContext
from pipelines.discovery import predicates


def run(ctx: RunContext) -> list[dict]:
    results = []
    for name in ctx.policy.table_order():
        p = predicates(ctx, name)
        table = ctx.tables[name]
        with ctx.store.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(p.due, sa.not_(p.held))).scalar_one()
        results.append({"name": f"retention.{name}", "success": left == 0, "unexpected_count": int(left)})
    with ctx.store.connect() as conn:
        v = ledger.verify(conn)
    results.append({"name": "ledger.chain", "success": v.ok, "unexpected_count": 0 if v.ok else 1})
    return results
