"""Which rows are due as of D, for which reason and action, and which of them are held.

Everything here builds SQL predicates; the reads are the list of deleted subjects whose own row a
hold moved to the vault (`vaulted_deleted_subjects`) and whether the tombstone table exists. A deleted
subject is found through its own row's `deleted_at`, in the store or in the vault, or through the
tombstone Lethe left when it erased that row (`pipelines.tombstones`). The same predicates drive the
plan, the apply step, the vault move and the verification, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from pipelines import markers, tombstones
from pipelines.context import RunContext
from pipelines.holds import held_predicate
from pipelines.store import comparable, in_key_texts, key_text
from pipelines.timestamps import at_or_before

_NEVER = sa.false()


@dataclass(frozen=True)
class TablePredicates:
    """SQL conditions on one table (or on its copy in the vault, which has the same columns)."""

    by_retention: sa.ColumnElement[bool]
    by_subject: sa.ColumnElement[bool]
    erase: sa.ColumnElement[bool]
    anonymize: sa.ColumnElement[bool]  # due for anonymization and not yet anonymized
    held: sa.ColumnElement[bool]

    @property
    def due(self) -> sa.ColumnElement[bool]:
        return sa.or_(self.erase, self.anonymize)

    def action(self) -> sa.ColumnElement[str]:
        return sa.case((self.erase, sa.literal("erase")), else_=sa.literal("anonymize"))


def deleted_subject_ids(ctx: RunContext) -> sa.Select | None:
    """Ids of subjects deleted at or before D minus the grace period whose own row is in the store (those
    whose row Lethe erased or moved are added by `predicates`, from the tombstones and the vault).
    """
    s = ctx.policy.subjects
    if s is None:
        return None
    table = ctx.tables[s.table]
    cutoff = s.erase_after.before(ctx.instant)
    return sa.select(table.c[s.id]).where(table.c[s.id].is_not(None),
                                          at_or_before(table.c[s.deleted_at], cutoff, ctx.dialect))


def vaulted_deleted_subjects(ctx: RunContext) -> list[str]:
    """Subjects deleted at or before D minus the grace period whose own row is in the vault, as text.

    A hold on a subject's row moves it out of the store, and with it the store's record that the
    subject was deleted; the subject's other rows are due all the same (holds are few: this is a short
    read of the vault's copy of the subjects table).
    """
    from pipelines.vault import existing_vault_table  # the vault module builds on this one

    s = ctx.policy.subjects
    vtable = existing_vault_table(ctx, s.table) if s is not None else None
    if vtable is None or s.id not in vtable.c or s.deleted_at not in vtable.c:
        return []
    cutoff = s.erase_after.before(ctx.instant)
    query = sa.select(vtable.c[s.id]).where(
        vtable.c[s.id].is_not(None), at_or_before(vtable.c[s.deleted_at], cutoff, ctx.vault.dialect.name))
    with ctx.vault.connect() as vconn:
        return sorted({str(v) for v in vconn.execute(query).scalars()})


def is_subject_record(ctx: RunContext, name: str) -> bool:
    """Whether `name` is the subjects table keyed by the subject id, so each row records its own deletion."""
    s, rule = ctx.policy.subjects, ctx.policy.tables[name]
    return s is not None and name == s.table and rule.subject == s.id == rule.key


def predicates(ctx: RunContext, name: str, table: sa.Table | None = None,
               with_markers: bool = True) -> TablePredicates:
    """Predicates for policy table `name`, evaluated on `table` (default: the store's table)."""
    rule = ctx.policy.tables[name]
    table = table if table is not None else ctx.tables[name]
    by_retention: sa.ColumnElement[bool] = _NEVER
    if rule.retain is not None:
        cutoff = rule.retain.period.before(ctx.instant)
        by_retention = at_or_before(table.c[rule.retain.from_column], cutoff, ctx.dialect)
    by_subject: sa.ColumnElement[bool] = _NEVER
    deleted = deleted_subject_ids(ctx)
    if rule.subject is not None and deleted is not None and rule.when_subject_deleted != "keep":
        subject = table.c[rule.subject]
        if is_subject_record(ctx, name):
            # A subjects row is its own deletion record: its deleted_at, not a semi-join of the table with
            # itself (the same rows, as the key is unique; at 10M rows the UPDATE took twice as long).
            s = ctx.policy.subjects
            in_deleted = at_or_before(table.c[s.deleted_at], s.erase_after.before(ctx.instant), ctx.dialect)
        else:
            ids = deleted.selected_columns[0]
            if not comparable(subject, ids):
                # an id kept as text here and as a number or UUID in the subjects table (or the other way
                # round): compared as text, as legal holds compare it, the tombstones' and vault's too
                subject, deleted = key_text(subject), deleted.with_only_columns(key_text(ids))
            in_deleted = subject.in_(deleted.scalar_subquery())
            vaulted = vaulted_deleted_subjects(ctx)
            if vaulted:
                in_deleted = sa.or_(in_deleted, in_key_texts(subject, vaulted))
        # A tombstone stands for a subjects row erased, or its deleted_at anonymized, inside the grace period.
        tombstoned = tombstones.deleted(ctx, subject)
        if tombstoned is not None:
            in_deleted = sa.or_(in_deleted, tombstoned)
        by_subject = sa.and_(subject.is_not(None), in_deleted)
    reasons = [(by_retention, rule.when_expired), (by_subject, rule.when_subject_deleted)]
    erase_reasons = [p for p, action in reasons if action == "erase" and p is not _NEVER]
    anonymize_reasons = [p for p, action in reasons if action == "anonymize" and p is not _NEVER]
    erase = sa.or_(*erase_reasons) if erase_reasons else _NEVER
    anonymize = _NEVER
    if anonymize_reasons:
        anonymize = sa.or_(*anonymize_reasons)
        if erase_reasons:
            anonymize = sa.and_(anonymize, sa.not_(erase))
        if with_markers:
            anonymize = sa.and_(anonymize, sa.not_(markers.is_marked(name, key_text(table.c[rule.key]))))
    held = held_predicate(ctx.holds, name, table, rule.key, rule.subject)
    return TablePredicates(by_retention, by_subject, erase, anonymize, held)


def markers_ready(ctx: RunContext) -> bool:
    """A dry run on a store Lethe never ran on has no marker table yet: nothing is anonymized then."""
    return markers.exists(ctx.store)


def count_due(ctx: RunContext, name: str) -> dict[str, int]:
    """Per table: due rows by reason and action, and how many of them are held; `erase_folded` counts
    rows to erase that were anonymized earlier, so already folded into any aggregate (a dry run's fold
    count leaves them out, as the run does).
    """
    table = ctx.tables[name]
    ready = markers_ready(ctx)
    p = predicates(ctx, name, with_markers=ready)
    due = p.due
    rule = ctx.policy.tables[name]
    marked = (markers.is_marked(name, key_text(table.c[rule.key])) if ready and rule.anonymizes else _NEVER)
    cols = [
        sa.func.count().filter(due).label("due"),
        sa.func.count().filter(sa.and_(due, p.by_retention)).label("due_by_retention"),
        sa.func.count().filter(sa.and_(due, p.by_subject)).label("due_by_subject_deletion"),
        sa.func.count().filter(sa.and_(p.erase, sa.not_(p.held))).label("erase"),
        sa.func.count().filter(sa.and_(p.erase, sa.not_(p.held), marked)).label("erase_folded"),
        sa.func.count().filter(sa.and_(p.anonymize, sa.not_(p.held))).label("anonymize"),
        sa.func.count().filter(sa.and_(due, p.held)).label("held"),
    ]
    with ctx.store.connect() as conn:
        row = conn.execute(sa.select(*cols).select_from(table).where(due)).one()
    return {k: int(v or 0) for k, v in row._mapping.items()}
