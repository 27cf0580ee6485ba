"""Suite builders: one `gx.ExpectationSuite` per scope, each expectation tagged with the name it is reported by.

Thresholds that vary per run (ledger totals, the policy's minimum group size) arrive in the specs, so the
same builders serve every policy and schema.
"""

from __future__ import annotations

from expectations.checks import AggregateRules, ColumnRule, ColumnRules, NoRows
from expectations.gx import gx, gxe

META_KEY = "lethe_check"


def _suite_name(name: str) -> str:
    return f"lethe.{name}"


def no_rows_suite(check: NoRows) -> gx.ExpectationSuite:
    """The batch is the query of offending rows: it must be empty (observed row count = rows left)."""
    suite = gx.ExpectationSuite(name=_suite_name(check.name))
    suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=0, meta={META_KEY: check.name}))
    return suite


def _column_expectation(rule: ColumnRule) -> gxe.Expectation:
    meta = {META_KEY: rule.name}
    if rule.kind == "match":
        return gxe.ExpectColumnValuesToMatchRegex(column=rule.column, regex=rule.regex, meta=meta)
    if rule.kind == "not_match":
        return gxe.ExpectColumnValuesToNotMatchRegex(column=rule.column, regex=rule.regex, meta=meta)
    if rule.kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=rule.column, value_set=list(rule.values), meta=meta)
    if rule.kind == "null":
        return gxe.ExpectColumnValuesToBeNull(column=rule.column, meta=meta)
    if rule.kind == "between":
        return gxe.ExpectColumnValuesToBeBetween(column=rule.column, min_value=rule.low, max_value=rule.high,
                                                 meta=meta)
    raise ValueError(f"unknown column rule kind {rule.kind!r}; valid: match, not_match, in_set, null, between")


def column_suite(scope: ColumnRules) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=_suite_name(scope.scope))
    for rule in scope.rules:
        suite.add_expectation(_column_expectation(rule))
    return suite


def aggregate_suite(agg: AggregateRules) -> gx.ExpectationSuite:
    """Totals equal the ledger's folds; every stored group has at least `min_group_size` members; the
    dimensions keep their rules.
    """
    suite = gx.ExpectationSuite(name=_suite_name(f"aggregate.{agg.table}"))
    suite.add_expectation(gxe.ExpectColumnSumToBeBetween(
        column=agg.count_column, min_value=agg.expected_total, max_value=agg.expected_total,
        meta={META_KEY: agg.total_name}))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(
        column=agg.count_column, min_value=agg.min_group_size, meta={META_KEY: agg.min_group_name}))
    for rule in agg.rules:
        suite.add_expectation(_column_expectation(rule))
    return suite
