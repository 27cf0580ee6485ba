"""Run check specs as Great Expectations 1.x suites inside the store, and keep every data value out of the result.

One ephemeral GX context per verification (nothing written to disk, analytics and progress bars off),
one SQL data source on the store, a query or table asset per scope, one suite and one
ValidationDefinition per asset. GX computes counts in the database; results are read for counts only,
with result_format SUMMARY, no partial list and unexpected values excluded, and GX's own logging is
muted while it runs, so no value from the data can reach a report, a log line or an exception.

SQLite has no REGEXP of its own: GX compiles regex expectations to SQLAlchemy's `regexp_match`, which the
pysqlite dialect serves with a Python `re.search` function it registers on every connection, so the
match still runs row by row inside SQLite; Lethe replaces that function on GX's connections with one that
compiles each pattern once (`_compiled_regexp`). PostgreSQL uses its `~` operator.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
import warnings
from collections.abc import Iterator, Sequence

from expectations.checks import AggregateRules, ColumnRules, NoRows, Outcome
from expectations.gx import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig, gx
from expectations.suites import META_KEY, aggregate_suite, column_suite, no_rows_suite

log = logging.getLogger("lethe.expectations")

# Counts only: no partial list, no unexpected values, no rows, no index query.
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
_QUIET_LOGGERS = ("great_expectations", "posthog", "backoff")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Mute GX's loggers and warnings for the duration (they may quote queries or metric values)."""
    saved = {}
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, (level, propagate) in saved.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).propagate = propagate


def _compiled_regexp(dbapi_connection, _record) -> None:
    """SQLite's REGEXP as SQLAlchemy defines it (`re.search(pattern, value)`, NULL for NULL), with each
    pattern compiled once: form checks call it for every anonymized value and pattern, and `re.search`
    looks its pattern up in re's cache on every call (0.2-0.3 us of the ~1 us a value costs).
    """
    compiled: dict[str, re.Pattern] = {}

    def regexp(pattern: str, value: str | None) -> bool | None:
        if value is None:
            return None
        rx = compiled.get(pattern)
        if rx is None:
            rx = compiled[pattern] = re.compile(pattern)
        return rx.search(value) is not None

    dbapi_connection.create_function("regexp", 2, regexp, deterministic=True)


def _store_engines(source) -> list:
    """The data source's engine and its execution engine's (GX validates through the latter, a second
    SQLAlchemy engine); on SQLite, every connection the latter opens uses `_compiled_regexp`.
    """
    import sqlalchemy as sa

    checks = source.get_execution_engine().engine
    if checks.dialect.name == "sqlite":
        sa.event.listen(checks, "connect", _compiled_regexp)  # after the dialect's own REGEXP: replaces it
        checks.dispose()  # a connection opened before keeps the dialect's
    return [source.get_engine(), checks]


def _context():
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                               analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def _raised(info: object) -> bool:
    """GX reports an exception flat, or per metric (a dict of such dicts)."""
    if not isinstance(info, dict):
        return False
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _count(result: dict, expected_total: int | None) -> int | None:
    """Units that broke an expectation: rows for map and row-count expectations, the difference for a sum."""
    if "unexpected_count" in result:
        return int(result["unexpected_count"] or 0)
    observed = result.get("observed_value")
    if observed is None:
        return None if expected_total is None else int(expected_total)
    if expected_total is not None:
        return abs(int(observed) - int(expected_total))
    return int(observed)


def _combine(seen: Outcome | None, new: Outcome) -> Outcome:
    """One check validated over several batches of its scope: it holds when it held in every batch,
    and its unexpected count is the sum (unknown when any batch could not be evaluated).
    """
    if seen is None:
        return new
    count = None if seen.unexpected_count is None or new.unexpected_count is None else (
        seen.unexpected_count + new.unexpected_count)
    return Outcome(new.name, seen.success and new.success, count)


def run(store_url: str, row_checks: Sequence[NoRows] = (), column_checks: Sequence[ColumnRules] = (),
        aggregates: Sequence[AggregateRules] = ()) -> list[Outcome]:
    """Validate every check against the store at `store_url`; one Outcome per expectation name, in input
    order. Column scopes that share expectation names (batches of one table) are combined.
    """
    if not (row_checks or column_checks or aggregates):
        return []
    outcomes: dict[str, Outcome] = {}
    order: list[str] = []
    with _quiet():
        context = _context()
        source = context.data_sources.add_sql(name=f"lethe_store_{uuid.uuid4().hex[:8]}",
                                              connection_string=store_url)
        engines = _store_engines(source)
        try:
            jobs = []
            for i, check in enumerate(row_checks):
                asset = source.add_query_asset(name=f"rows_{i}", query=check.query)
                jobs.append((asset, no_rows_suite(check), {}))
            for i, scope in enumerate(column_checks):
                if not scope.rules:
                    continue
                asset = source.add_query_asset(name=f"scope_{i}", query=scope.query)
                jobs.append((asset, column_suite(scope), {}))
            for i, agg in enumerate(aggregates):
                asset = (source.add_query_asset(name=f"aggregate_{i}", query=agg.query) if agg.query else
                         source.add_table_asset(name=f"aggregate_{i}", table_name=agg.table))
                jobs.append((asset, aggregate_suite(agg), {agg.total_name: agg.expected_total}))
            for asset, suite, totals in jobs:
                order.extend(e.meta[META_KEY] for e in suite.expectations if e.meta[META_KEY] not in order)
                suite = context.suites.add(suite)
                batch = asset.add_batch_definition_whole_table("all")
                definition = context.validation_definitions.add(
                    gx.ValidationDefinition(name=f"{suite.name}", data=batch, suite=suite))
                try:
                    result = definition.run(result_format=RESULT_FORMAT)
                except Exception as exc:  # noqa: BLE001 - reported as failed checks, the message is not kept
                    for e in suite.expectations:
                        log.warning("expectation %s could not be evaluated (%s)", e.meta[META_KEY],
                                    type(exc).__name__)
                        name = e.meta[META_KEY]
                        outcomes[name] = _combine(outcomes.get(name), Outcome(name, False, None))
                    continue
                for r in result.results:
                    name = r.expectation_config.meta[META_KEY]
                    if _raised(r.exception_info):
                        # The exception text may quote the query; only its kind is logged.
                        log.warning("expectation %s could not be evaluated", name)
                        outcomes[name] = _combine(outcomes.get(name), Outcome(name, False, None))
                        continue
                    outcome = Outcome(name, bool(r.success), _count(dict(r.result or {}), totals.get(name)))
                    outcomes[name] = _combine(outcomes.get(name), outcome)
        finally:
            for engine in engines:
                with contextlib.suppress(Exception):
                    engine.dispose()
    return [outcomes[n] for n in order]
