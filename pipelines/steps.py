"""The steps of a run, each re-entrant and callable on its own: the CLI runs them in order, the
Airflow DAG runs each as a task. Steps return small JSON-able dicts (XCom-sized).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pipelines import aggregates, key_ids, ledger, markers, tombstones
from pipelines import store as stores
from pipelines.apply import apply_table, key_bounds
from pipelines.context import RunContext
from pipelines.discovery import count_due, predicates
from pipelines.errors import step
from pipelines.holds import held_predicate
from pipelines.store import column_kind
from pipelines.timestamps import as_utc, at_or_before
from pipelines.vault import existing_vault_table, move_held, releasable, release


def prepare_store(ctx: RunContext) -> None:
    """Create Lethe's own tables in the store (markers, ledger, tombstones) before a run's first change, and
    forget the markers of rows deleted since, where the key is text (it may be a personal value, such as an
    email; integer and UUID keys say nothing without their row, and probing every marker would cost each
    run time in proportion to all rows ever anonymized).
    """
    with step("prepare"):
        markers.ensure(ctx.store)
        ledger.ensure(ctx.store)
        tombstones.ensure(ctx.store)
        # once a run, not in every `ensure` (called per table and per DAG partition)
        stores.widen_to_text(ctx.store, markers.ANONYMIZED.name, "row_key")
        stores.widen_to_text(ctx.store, tombstones.TOMBSTONES.name, "subject_key")
        key_ids.record(ctx.store, ctx.policy.pseudonymization.key_id, ctx.key, ctx.run_id)
    for name, rule in ctx.policy.tables.items():
        table = ctx.tables[name]
        if column_kind(table.c[rule.key]) == "text":  # also once the table no longer anonymizes
            with step("prepare", name):
                markers.forget_deleted(ctx.store, name, table, rule.key)
    # A table taken out of the policy (or another policy's) keeps markers, and a text key may be an email:
    # those of its rows deleted since are forgotten here too. Markers of a table missing from the store stay
    # (a table renamed for a migration comes back; forgetting them would anonymize and fold its rows again).
    for name in markers.other_tables(ctx.store, set(ctx.policy.tables)):
        table = stores.reflect(ctx.store, [name]).get(name)
        key = list(table.primary_key.columns) if table is not None else []
        if len(key) == 1 and column_kind(key[0]) == "text":
            with step("prepare", name):
                markers.forget_deleted(ctx.store, name, table, key[0].name)


def plan(ctx: RunContext) -> dict[str, dict[str, int]]:
    """Due rows per table, by reason and action, and how many are held."""
    out = {}
    for name in ctx.policy.table_order():
        with step("plan", name):
            out[name] = count_due(ctx, name)
    return out


def move_held_rows(ctx: RunContext) -> dict[str, int]:
    if not ctx.holds:
        return {name: 0 for name in ctx.policy.tables}
    out = {}
    for name in ctx.policy.table_order():
        with step("move to the vault", name):
            out[name] = move_held(ctx, name)
    return out


def release_vault_rows(ctx: RunContext) -> dict[str, dict[str, int]]:
    """Release vault rows no longer held; in a dry run, count what a release would do."""
    out = {}
    for name in ctx.policy.table_order():
        with step("vault release", name):
            c = releasable(ctx, name) if ctx.dry_run else release(ctx, name)
        out[name] = {"erased": c.released_erased, "returned": c.released_returned, "folded": c.folded}
    return out


def partitions(ctx: RunContext, name: str, count: int) -> list[list]:
    """Key ranges of a table's due rows for parallel apply tasks (JSON-able). The subjects table gets one
    open range even with no row due when tombstones wait to be forgotten: its apply step forgets them.
    """
    with step("partitions", name):
        bounds = [[lo, hi] for lo, hi in key_bounds(ctx, name, count)]
        if not bounds and _forgets_tombstones(ctx, name):
            bounds = [[None, None]]
    return bounds


def needs_apply(ctx: RunContext, name: str, planned: dict[str, int]) -> bool:
    """Whether the apply step has work on this table: rows its plan found to erase or anonymize, or, for
    the subjects table, tombstones past the grace period to forget.
    """
    return bool(planned.get("erase") or planned.get("anonymize")) or _forgets_tombstones(ctx, name)


def _forgets_tombstones(ctx: RunContext, name: str) -> bool:
    return tombstones.is_subjects_table(ctx, name) and tombstones.waiting(ctx)


def apply(ctx: RunContext, name: str, key_range: list | None = None, expected: int | None = None) -> dict:
    """Erase or anonymize a table's due rows (within `key_range`). The subjects table is applied last, so
    once it is, the tombstones past the grace period have done their work and are forgotten.
    """
    with step("apply", name):
        subjects = tombstones.is_subjects_table(ctx, name)
        if subjects:
            tombstones.ensure(ctx.store)  # before the chunks' transactions, which may write tombstones
        counts = apply_table(ctx, name, key_range=tuple(key_range) if key_range else None, expected=expected)
        if subjects:
            tombstones.forget_past_grace(ctx)
    return {"table": name, "erased": counts.erased, "anonymized": counts.anonymized, "folded": counts.folded}


def coarsen(ctx: RunContext) -> dict[str, int]:
    """Merge small aggregate groups where the policy asks for it (`coarsen:`)."""
    merged = {}
    for name, agg in ctx.policy.aggregates.items():
        if not agg.coarsen or not sa.inspect(ctx.store).has_table(name):
            continue
        table = aggregates.table_for(name, agg, ctx.tables[agg.from_table])
        with step("coarsen", name), ctx.store.begin() as conn:
            merged[name] = aggregates.coarsen(conn, table, agg)
    return merged


def holds_summary(ctx: RunContext) -> list[dict]:
    """Per active hold: its case reference and how many rows it protects in the store and the vault."""
    out = []
    for hold in ctx.holds:
        in_store = in_vault = 0
        for name, rule in ctx.policy.tables.items():
            if not hold.applies_to_table(name, rule.subject is not None):
                continue
            table = ctx.tables[name]
            pred = held_predicate([hold], name, table, rule.key, rule.subject)
            with ctx.store.connect() as conn:
                in_store += conn.execute(sa.select(sa.func.count()).select_from(table).where(pred)).scalar_one()
            vtable = existing_vault_table(ctx, name)
            if vtable is not None:
                vpred = held_predicate([hold], name, vtable, rule.key, rule.subject, table)
                with ctx.vault.connect() as vconn:
                    in_vault += vconn.execute(sa.select(sa.func.count()).select_from(vtable).where(vpred)).scalar_one()
        out.append({"hold_id": hold.hold_id, "case_ref": hold.case_ref, "rows_in_store": int(in_store),
                    "rows_in_vault": int(in_vault)})
    return out


def pending_subjects(ctx: RunContext, limit: int = 500) -> dict:
    """Deleted subjects whose own row is not yet erased or anonymized, with their age and why.

    No identifiers: each entry is the deletion date, its age in days as of D and a reason.
    """
    s = ctx.policy.subjects
    if s is None or s.table not in ctx.policy.tables:
        return {"count": 0, "overdue": 0, "subjects": []}
    rule, table = ctx.policy.tables[s.table], ctx.tables[s.table]
    p = predicates(ctx, s.table, with_markers=sa.inspect(ctx.store).has_table("lethe_anonymized"))
    deleted = table.c[s.deleted_at]
    waiting = sa.and_(deleted.is_not(None), sa.or_(
        p.anonymize, p.erase,
        sa.not_(at_or_before(deleted, s.erase_after.before(ctx.instant), ctx.dialect))))
    if rule.when_subject_deleted == "keep":
        return {"count": 0, "overdue": 0, "subjects": []}
    month_ago = ctx.instant - dt.timedelta(days=30)
    entries, overdue, total = [], 0, 0
    with ctx.store.connect() as conn:
        rows = conn.execute(sa.select(deleted, p.held.label("held")).where(waiting).order_by(deleted)).all()
    rows = sorted([*rows, *_vaulted_subjects(ctx)], key=lambda r: str(r[0]))
    for when, held in rows:
        total += 1
        stamp = as_utc(when)
        if stamp is None:
            continue
        age = (ctx.instant - stamp).days
        is_overdue = stamp <= month_ago
        overdue += is_overdue
        reason = ("held" if held else "grace period" if age < _grace_days(ctx) else
                  "not yet processed (run failed or not yet run)")
        if len(entries) < limit:
            entries.append({"deleted_on": stamp.date().isoformat(), "age_days": age, "overdue": is_overdue,
                            "reason": reason})
    return {"count": total, "overdue": overdue, "subjects": entries}


def _vaulted_subjects(ctx: RunContext) -> list[tuple[object, bool]]:
    """Deleted subjects whose row sits in the vault: still not erased, because a hold protects it."""
    s = ctx.policy.subjects
    vtable = existing_vault_table(ctx, s.table)
    if vtable is None or s.deleted_at not in vtable.c:
        return []
    with ctx.vault.connect() as vconn:
        stamps = vconn.execute(sa.select(vtable.c[s.deleted_at]).where(vtable.c[s.deleted_at].is_not(None))).scalars()
        return [(stamp, True) for stamp in stamps]


def _grace_days(ctx: RunContext) -> int:
    s = ctx.policy.subjects
    return (ctx.instant - s.erase_after.before(ctx.instant)).days


def ledger_state(ctx: RunContext) -> dict:
    with ctx.store.connect() as conn:
        v = ledger.verify(conn)  # also when the ledger's tables are missing: they may have been removed
        s = (ledger.summary(conn, ctx.run_id) if sa.inspect(conn).has_table(ledger.LEDGER.name)
             else {"entries": 0, "head": ledger.GENESIS})
    return {**s, "verified": v.ok, "total_entries": v.entries,
            **({"first_bad_entry": v.first_bad} if not v.ok else {})}


__all__ = ["plan", "move_held_rows", "release_vault_rows", "partitions", "needs_apply", "apply", "coarsen",
           "holds_summary", "pending_subjects", "ledger_state"]
