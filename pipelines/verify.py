"""Verification after a run (SPEC "What a run does", step 6): checks derived from the policy, run in the database.

The engine knows what "due", "held" and "anonymized" mean (discovery predicates, the marker table, the
operators' promised forms), so it derives the check specs here and compiles its own SQL into them;
`expectations` turns them into Great Expectations suites. Two checks GX cannot express run here in
Python and are reported the same way: vault checksums (read in batches bounded in bytes) and the ledger's hash chain.
Results are name, success and unexpected count only: never a value from the data.

Names produced (T a policy table, C an anonymized column, A an aggregate):
  retention.T             no row due by retention is left unprocessed and unheld
  erasure.T               no row of a subject deleted before the grace period is left unprocessed and unheld
  holds.T                 no due row under an active hold is left in the store (it belongs in the vault)
  form.T.C                anonymized values have the operator's form (regex / NULL / fill value / range)
  form.T.C.no_email|no_phone|no_ip   anonymized values are no email, phone number or full IP address
  vault.T                 every vault row hashes to its recorded checksum
  vault.T.rows            the vault holds the rows the ledger records as moved there and not released
  aggregate.A.total       row_count sums to the folds the ledger records
  aggregate.A.min_group_size         no stored group below min_group_size
  ledger.chain            the ledger's hash chain verifies
"""

from __future__ import annotations

import logging
import os
import re

import sqlalchemy as sa

from expectations import (
    AGGREGATE_PATTERNS,
    IDENTIFIER_PATTERNS,
    AggregateRules,
    ColumnRule,
    ColumnRules,
    NoRows,
    Outcome,
)
from pipelines import ledger, markers
from pipelines.aggregates import ROW_COUNT
from pipelines.context import RunContext
from pipelines.discovery import predicates
from pipelines.holds import PROVENANCE
from pipelines.store import column_kind, key_in, reflect
from pipelines.vault import checksum, existing_vault_table
from pipelines.widths import by_bytes, row_bytes

log = logging.getLogger("lethe.verify")

VAULT_CHUNK = 5_000
# Anonymized rows per form-check batch. GX learns a query's columns by running it and fetching every
# row (great_expectations/expectations/metrics/util.py, column_reflection_fallback), so one scope over
# every row ever anonymized would hold them all in memory at once; batches bound that.
FORM_BATCH = int(os.environ.get("LETHE_FORM_BATCH", "250000"))
MAX_INT63 = (1 << 63) - 1
# Operators whose output promises to be no identifier at all, so a value that looks like an email, phone
# number or IP address is a leak. Not: keep (unchanged by design), generalize_ip (a network prefix looks
# like an address), truncate (a prefix of the value by design), email_domain (a domain), dates and numbers.
_IDENTIFIER_FREE = {"pseudonymize", "mask"}
# `fake` promises a realistic value of its provider: only these providers promise no email, phone or IP.
_FAKE_IDENTIFIER_FREE = {"name", "first_name", "last_name", "name_female", "name_male", "first_name_female",
                         "first_name_male", "last_name_female", "last_name_male", "prefix", "suffix", "company",
                         "job", "city", "country", "word", "catch_phrase", "color_name"}


# How SQLAlchemy's text() finds a `:name` parameter (sqlalchemy.sql.elements.TextClause), quoted or not.
_TEXT_PARAMETER = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)
# How often GX reads a query asset's SQL through text(): once into the batch's query, compiled back to text,
# and once more for the batch itself (great_expectations/execution_engine/sqlalchemy_execution_engine.py,
# get_batch_data_and_markers). Each pass turns an escaped `\:name` back into `:name`.
_GX_TEXT_PASSES = 2


def _sql(ctx: RunContext, stmt: sa.Select) -> str:
    """The statement as SQL text for GX, literals inlined: cutoffs, table names, and keys (hold scopes,
    form-batch bounds). The text stays in GX's in-memory context, whose logging is muted while it runs.

    GX reads it with SQLAlchemy's text(), which takes `:name` for a parameter even in a quoted name or string
    (a column ":memo", a held key 'ref :7'): bound to NULL, the check could not be evaluated, and every run
    failed. Each such colon is escaped once for each of GX's passes.
    """
    sql = str(stmt.compile(dialect=ctx.store.dialect, compile_kwargs={"literal_binds": True}))
    return _TEXT_PARAMETER.sub(lambda m: "\\" * _GX_TEXT_PASSES + m.group(0), sql)


def _offending(ctx: RunContext, table: sa.Table, *where: sa.ColumnElement[bool]) -> str:
    return _sql(ctx, sa.select(sa.literal(1).label("lethe_unexpected")).select_from(table).where(*where))


def row_checks(ctx: RunContext) -> list[NoRows]:
    """Retention, erasure and holds: queries of rows that must not exist after a run."""
    checks = []
    for name in ctx.policy.table_order():
        rule, table = ctx.policy.tables[name], ctx.tables[name]
        p = predicates(ctx, name)
        not_held = sa.not_(p.held)
        if rule.retain is not None:
            checks.append(NoRows(f"retention.{name}", _offending(ctx, table, p.by_retention, p.due, not_held)))
        if rule.subject is not None and ctx.policy.subjects is not None and rule.when_subject_deleted != "keep":
            checks.append(NoRows(f"erasure.{name}", _offending(ctx, table, p.by_subject, p.due, not_held)))
        if ctx.policy.legal_holds is not None:
            checks.append(NoRows(f"holds.{name}", _offending(ctx, table, p.due, p.held)))
    return checks


def _rules_for(name: str, column: str, op: object, kind: str) -> list[ColumnRule]:
    base = f"form.{name}.{column}"
    rules: list[ColumnRule] = []
    op_name = op.name
    if op_name == "keep":
        return rules
    if op_name == "redact":
        fill = op.params.fill
        rules.append(ColumnRule(base, column, "null") if fill is None else ColumnRule(base, column, "in_set",
                                                                                      values=(fill,)))
        return rules
    if op_name == "pseudonymize" and kind == "integer":
        return [ColumnRule(base, column, "between", low=0, high=MAX_INT63)]
    if kind != "text":
        return rules  # the column type already constrains dates and numbers; regexes apply to text
    regex = op.form_regex(kind)
    if regex:
        rules.append(ColumnRule(base, column, "match", regex=regex))
    identifier_free = op_name in _IDENTIFIER_FREE or (
        op_name == "fake" and op.params.provider in _FAKE_IDENTIFIER_FREE)
    if identifier_free:
        rules.extend(ColumnRule(f"{base}.{suffix}", column, "not_match", regex=pattern)
                     for suffix, pattern in IDENTIFIER_PATTERNS.items())
    return rules


def column_checks(ctx: RunContext) -> list[ColumnRules]:
    """Anonymized form: per table, the rows recorded in lethe_anonymized, the anonymized columns only."""
    out = []
    if not markers.exists(ctx.store):
        return out
    for name in ctx.policy.table_order():
        rule, table = ctx.policy.tables[name], ctx.tables[name]
        if not rule.anonymizes:
            continue
        rules = []
        for column, op in ctx.operators.get(name, {}).items():
            rules.extend(_rules_for(name, column, op, column_kind(table.c[column])))
        if not rules:
            continue
        columns = sorted({r.column for r in rules})
        batches = markers.marker_ranges(ctx.store, name, FORM_BATCH)
        for i, (after, upto) in enumerate(batches):
            scope = sa.select(*(table.c[c] for c in columns)).where(
                markers.anonymized_rows(name, table.c[rule.key], after, upto))
            label = f"form.{name}" if len(batches) == 1 else f"form.{name}.batch{i + 1}"
            out.append(ColumnRules(label, _sql(ctx, scope), tuple(rules)))
    return out


def aggregate_checks(ctx: RunContext) -> tuple[list[AggregateRules], list[Outcome]]:
    """Aggregate tables present in the store go to GX; a missing one can only be right if nothing was folded.

    An aggregate keeps generalized values only: no text dimension may hold an email or an IP address (a
    dimension without an operator on `email` would keep every address after its account is gone). Plain
    dimensions hold values of any shape, so an address counts only as the whole value there
    (`AGGREGATE_PATTERNS`), and there is no phone check: a date or ZIP+4 code as text is a digit run too.
    """
    if not ctx.policy.aggregates:
        return [], []
    with ctx.store.connect() as conn:
        totals = ledger.folded_totals(conn) if sa.inspect(conn).has_table(ledger.LEDGER.name) else {}
    existing = reflect(ctx.store, list(ctx.policy.aggregates))
    specs, outcomes = [], []
    for name, agg in ctx.policy.aggregates.items():
        expected = totals.get(name, 0)
        total_name, min_name = f"aggregate.{name}.total", f"aggregate.{name}.min_group_size"
        if name not in existing:
            outcomes += [Outcome(total_name, expected == 0, expected), Outcome(min_name, True, 0)]
            continue
        table = existing[name]
        text = [d for d in agg.dimensions if d in table.c and column_kind(table.c[d]) == "text"]
        rules = tuple(ColumnRule(f"aggregate.{name}.{dim}.{suffix}", dim, "not_match", regex=pattern)
                      for dim in text for suffix, pattern in AGGREGATE_PATTERNS.items())
        query = _sql(ctx, sa.select(table.c[ROW_COUNT], *(table.c[d] for d in text)))
        specs.append(AggregateRules(name, ROW_COUNT, expected, agg.min_group_size, total_name, min_name, query,
                                    rules))
    return specs, outcomes


def vault_checks(ctx: RunContext) -> list[Outcome]:
    """Every vault row's checksum over the source columns equals lethe_checksum (read in batches bounded in bytes),
    and the vault holds at least the rows the ledger says were moved there and not released (`vault.T.rows`): a
    vault row deleted, or a vault table dropped, matched no checksum to fail and went unnoticed. A vault table
    that lost a source or provenance column fails for every row (it was an error, exit 3, naming no table).
    """
    out = []
    if ctx.policy.legal_holds is None or not ctx.has_vault():
        return out
    with ctx.store.connect() as conn:
        held = ledger.vault_balance(conn) if sa.inspect(conn).has_table(ledger.LEDGER.name) else {}
    for name in ctx.policy.table_order():
        vtable = existing_vault_table(ctx, name)
        expected = held.get(name, 0)
        if vtable is None:
            if expected > 0:
                out.append(Outcome(f"vault.{name}.rows", False, expected))
            continue
        columns = [c for c in ctx.tables[name].c.keys() if c not in PROVENANCE]
        intact = all(c in vtable.c for c in [*columns, "lethe_checksum"])
        key = vtable.c[ctx.policy.tables[name].key]
        bad = seen = 0
        with ctx.vault.connect() as vconn:
            if intact:  # keys and sizes first: the rows themselves one batch at a time
                sized = vconn.execute(sa.select(key, row_bytes(vtable.columns, ctx.vault.dialect.name))
                                      .order_by(key)).all()
                for batch in by_bytes(sized, max_rows=VAULT_CHUNK):
                    rows = vconn.execute(sa.select(vtable).where(key_in(key, [k for (k,) in batch]))).mappings().all()
                    seen += len(batch)
                    bad += sum(1 for row in rows if checksum(row, columns) != row["lethe_checksum"])
            else:
                seen = bad = vconn.execute(sa.select(sa.func.count()).select_from(vtable)).scalar_one()
        out.append(Outcome(f"vault.{name}", bad == 0, bad))
        out.append(Outcome(f"vault.{name}.rows", seen >= expected, max(0, expected - seen)))
    return out


def ledger_check(ctx: RunContext) -> Outcome:
    with ctx.store.connect() as conn:
        v = ledger.verify(conn)
    # The ledger holds no personal value; the first bad entry's number helps whoever investigates.
    if not v.ok:
        log.warning("ledger chain broken at entry %s", v.first_bad)
    return Outcome("ledger.chain", v.ok, 0 if v.ok else 1)


def load() -> None:
    """Import Great Expectations now (1-1.5 s of Lethe's CPU), so it can overlap the database's work."""
    import expectations.validate  # noqa: F401 - importing it imports GX (`expectations.gx`)


def run(ctx: RunContext) -> list[dict]:
    from expectations import validate

    aggregates, missing = aggregate_checks(ctx)
    store_url = ctx.store.url.render_as_string(hide_password=False)
    outcomes = validate.run(store_url, row_checks(ctx), column_checks(ctx), aggregates)
    outcomes += missing + vault_checks(ctx) + [ledger_check(ctx)]
    failed = [o.name for o in outcomes if not o.success]
    if failed:
        log.warning("failed expectations: %s", ", ".join(failed))
    return [o.as_dict() for o in outcomes]
