"""Which rows are due as of D, for which reason and action, and which of them are held.

Everything here builds SQL predicates; nothing reads or writes data. The same predicates drive the
plan, the apply step, the vault move and the verification, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from pipelines import markers
from pipelines.context import RunContext
from pipelines.holds import held_predicate
from pipelines.store import key_text
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
    """Ids of subjects deleted at or before D minus the grace period."""
    s = ctx.policy.subjects
    if s is None:
        return None
    table = ctx.tables[s.table]
    cutoff = s.erase_after.before(ctx.instant)
    return sa.select(table.c[s.id]).where(table.c[s.id].is_not(None),
                                          at_or_before(table.c[s.deleted_at], cutoff, ctx.dialect))


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
        by_subject = sa.and_(subject.is_not(None), subject.in_(deleted.scalar_subquery()))
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
    """Per table: due rows by reason and action, and how many of them are held."""
    table = ctx.tables[name]
    p = predicates(ctx, name, with_markers=markers_ready(ctx))
    due = p.due
    cols = [
        sa.func.count().filter(due).label("due"),
        sa.func.count().filter(sa.and_(due, p.by_retention)).label("due_by_retention"),
        sa.func.count().filter(sa.and_(due, p.by_subject)).label("due_by_subject_deletion"),
        sa.func.count().filter(sa.and_(p.erase, sa.not_(p.held))).label("erase"),
        sa.func.count().filter(sa.and_(p.anonymize, sa.not_(p.held))).label("anonymize"),
        sa.func.count().filter(sa.and_(due, p.held)).label("held"),
    ]
    with ctx.store.connect() as conn:
        row = conn.execute(sa.select(*cols).select_from(table).where(due)).one()
    return {k: int(v or 0) for k, v in row._mapping.items()}
