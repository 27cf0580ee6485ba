"""`lethe run` / `lethe plan`: the steps in order, under the store lock, ending in a report."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from pipelines import ledger, lock, report, steps
from pipelines.context import RunContext, build
from pipelines.errors import LetheError, LockLostError, RunFailedError, StepFailedError, describe, step

log = logging.getLogger("lethe.run")


@dataclass
class RunResult:
    report: dict
    report_path: Path | None

    @property
    def status(self) -> str:
        return self.report["status"]

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "failed": 1}.get(self.status, 3)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def table_rules(ctx: RunContext) -> dict:
    """What the policy says per table, for reviewers (periods, actions)."""
    out = {}
    for name, rule in ctx.policy.tables.items():
        out[name] = {
            "retention": (f"{rule.retain.period.describe()} from {rule.retain.from_column}" if rule.retain else None),
            "when_expired": rule.when_expired,
            "when_subject_deleted": rule.when_subject_deleted,
        }
    return out


def assemble(ctx: RunContext, *, started_at: str, planned: dict, moved: dict, released: dict, applied: dict,
             expectations: list[dict], status: str, error: str | None = None) -> dict:
    """The report dict from the steps' outputs (the DAG assembles it from XComs the same way)."""
    tables = {}
    for name in ctx.policy.tables:
        p = planned.get(name, {})
        a = applied.get(name, {})
        r = released.get(name, {})
        if ctx.dry_run:
            erased, anonymized, to_vault = p.get("erase", 0), p.get("anonymize", 0), p.get("held", 0)
        else:
            erased, anonymized, to_vault = a.get("erased", 0), a.get("anonymized", 0), moved.get(name, 0)
        tables[name] = {
            "due": p.get("due", 0), "erased": erased, "anonymized": anonymized, "moved_to_vault": to_vault,
            "due_by_retention": p.get("due_by_retention", 0),
            "due_by_subject_deletion": p.get("due_by_subject_deletion", 0),
            "held": p.get("held", 0),
            "released_erased": r.get("erased", 0), "released_returned": r.get("returned", 0),
        }
    folded: dict[str, int] = {name: 0 for name in ctx.policy.aggregates}
    for name, agg in ctx.policy.aggregates.items():
        if ctx.dry_run:
            p = planned.get(agg.from_table, {})
            folded[name] = p.get("erase", 0) - p.get("erase_folded", 0) + p.get("anonymize", 0)
        else:
            folded[name] = applied.get(agg.from_table, {}).get("folded", {}).get(name, 0)
        folded[name] += released.get(agg.from_table, {}).get("folded", {}).get(name, 0)
    with step("report"):
        ledger_state, holds, pending = steps.ledger_state(ctx), steps.holds_summary(ctx), steps.pending_subjects(ctx)
    out = {
        "run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "dry_run": ctx.dry_run, "status": status,
        "policy_sha256": ctx.policy.sha256, "policy_file": Path(ctx.policy.source).name,
        "started_at": started_at, "finished_at": _now(),
        "tables": tables,
        "vault": {"moved": sum(t["moved_to_vault"] for t in tables.values()),
                  "released": sum(t["released_erased"] + t["released_returned"] for t in tables.values())},
        "aggregates": {name: {"folded": n} for name, n in folded.items()},
        "expectations": expectations,
        "ledger": ledger_state,
        "rules": table_rules(ctx),
        "holds": holds,
        "pending_subjects": pending,
    }
    hints = report.form_hints(expectations, ctx.operators)
    if hints:
        out["hints"] = hints
        for hint in hints:
            log.warning("%s", hint)
    if error:
        out["error"] = error
    return out


def verify(ctx: RunContext, changed: dict[str, int] | None = None) -> list[dict]:
    """Step 6. Tables changed in bulk are ANALYZEd while Great Expectations loads (`planner_stats`); `changed`
    counts this run's rows per table (the DAG's verify task leaves it to the statistics view). GX is not
    loaded earlier, beside the apply step: its modules stay resident, so the two peaks of memory would add.
    """
    from pipelines import planner_stats
    from pipelines import verify as verification

    with step("verify"):
        with planner_stats.refreshing(ctx, changed or {}):
            verification.load()
        return verification.run(ctx)


def changed_per_table(moved: dict, released: dict, applied: dict) -> dict[str, int]:
    """Rows of each table this run deleted, updated or inserted in the store."""
    return {name: moved.get(name, 0) + released.get(name, {}).get("returned", 0)
            + applied.get(name, {}).get("erased", 0) + applied.get(name, {}).get("anonymized", 0)
            for name in {*moved, *released, *applied}}


def execute(ctx: RunContext, planned: dict | None = None) -> tuple[dict, dict, dict, dict]:
    """Steps 1-5 of a run (in a dry run the plan and the vault release only count; nothing moves)."""
    planned = steps.plan(ctx) if planned is None else planned
    if ctx.dry_run:
        return planned, {}, steps.release_vault_rows(ctx), {}
    moved = steps.move_held_rows(ctx)
    released = steps.release_vault_rows(ctx)
    applied = {}
    for name in ctx.policy.table_order():
        # Under the lock only Lethe changes what is due, and the vault steps only take rows away, so a
        # table the plan found nothing to do for is skipped instead of searched again (as the DAG skips
        # it: its partitions are empty). Rows inserted meanwhile are the next run's.
        if steps.needs_apply(ctx, name, planned[name]):
            applied[name] = steps.apply(ctx, name, expected=planned[name]["erase"] + planned[name]["anonymize"])
    steps.coarsen(ctx)
    return planned, moved, released, applied


_LEDGER_ACTIONS = {"erase": "erased", "anonymize": "anonymized"}
_RELEASE_ACTIONS = {"release_erase": "erased", "release_anonymize": "returned"}


def committed_changes(ctx: RunContext) -> tuple[dict, dict, dict]:
    """What this run committed so far, as `execute` returns it (moved, released, applied), read back from its
    ledger entries: each entry commits with the change it records, so this holds even for a run that failed
    part-way. Folds are counted with the aggregate's source table.
    """
    with ctx.store.connect() as conn:
        totals = ledger.run_totals(conn, ctx.run_id) if sa.inspect(conn).has_table(ledger.LEDGER.name) else {}
    sources = {name: agg.from_table for name, agg in ctx.policy.aggregates.items()}
    moved: dict = {}
    released: dict = {}
    applied: dict = {}
    for (table, action), rows in totals.items():
        if action == "move_to_vault":
            moved[table] = rows
        elif action in _RELEASE_ACTIONS:
            released.setdefault(table, {})[_RELEASE_ACTIONS[action]] = rows
        elif action in _LEDGER_ACTIONS:
            applied.setdefault(table, {})[_LEDGER_ACTIONS[action]] = rows
        elif action == "fold" and table in sources:
            applied.setdefault(sources[table], {}).setdefault("folded", {})[table] = rows
    return moved, released, applied


def failure_report(ctx: RunContext, started_at: str, planned: dict, error: str) -> dict:
    """The report of a run that stopped part-way. Its counts are the rows it changed before it stopped (its
    ledger entries), not zeros: compliance staff read the report, and the rows erased before the failure are
    gone. When the store cannot be read any more (it went away mid-run), the report says only that.
    """
    try:
        moved, released, applied = ({}, {}, {}) if ctx.dry_run else committed_changes(ctx)
        return assemble(ctx, started_at=started_at, planned=planned, moved=moved, released=released,
                        applied=applied, expectations=[], status="error", error=error)
    except Exception as exc:  # noqa: BLE001 - the report of the failure must still be written
        log.error("run %s: the store cannot be read to count what the run changed (%s)", ctx.run_id, describe(exc))
        return {"run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "dry_run": ctx.dry_run, "status": "error",
                "policy_sha256": ctx.policy.sha256, "started_at": started_at, "finished_at": _now(),
                "error": f"{error}. The store could not be read afterwards, so this report has no counts: the "
                         f"ledger entries of run {ctx.run_id} record what it changed",
                # the SPEC's fields, with null for what could not be read (not zeros, which would claim them)
                "tables": {}, "vault": {"moved": None, "released": None}, "aggregates": {}, "expectations": [],
                "ledger": {"entries": None, "head": None}}


def _release(ctx: RunContext) -> None:
    """Release the store lock. A store gone away cannot be released, and need not be: its lock goes stale
    and the next run takes it over. Raising here turned a failure part-way (exit 3) into a traceback (exit 1).
    """
    try:
        lock.release(ctx.store, ctx.run_id)
    except Exception as exc:  # noqa: BLE001 - the run's outcome is already decided and reported
        log.warning("run %s could not release the store lock (%s); the next run takes it over once it is stale",
                    ctx.run_id, describe(exc))


def run(policy: str | Path, as_of: dt.date, *, dry_run: bool = False, report_dir: str | Path = "reports",
        store: str | None = None, vault: str | None = None, workers: int | None = None) -> RunResult:
    """Run (or plan) as of `as_of`. Input errors raise before anything is touched; a failure part-way
    is reported with status `error` and raised as RunFailedError after the report is written.
    """
    ctx = build(policy, as_of, dry_run=dry_run, store=store, vault=vault, workers=workers)
    started = _now()
    report_dir = report.prepare_dir(report_dir)
    locked = False
    planned: dict = {}
    try:
        try:
            if not dry_run:
                lock.acquire(ctx.store, ctx.run_id, pid=os.getpid())
                locked = True
            with lock.heartbeating(ctx.store, ctx.run_id) if locked else contextlib.nullcontext():
                if locked:
                    steps.prepare_store(ctx)
                planned = steps.plan(ctx)
                planned, moved, released, applied = execute(ctx, planned)
                expectations = [] if dry_run else verify(ctx, changed_per_table(moved, released, applied))
            status = "succeeded" if all(e["success"] for e in expectations) else "failed"
            rep = assemble(ctx, started_at=started, planned=planned, moved=moved, released=released,
                           applied=applied, expectations=expectations, status=status)
        except Exception as exc:
            if isinstance(exc, LetheError) and not isinstance(exc, StepFailedError | LockLostError):
                raise
            # Lethe's own errors name the step and the table, a database's its kind; anything else only its type
            failure = str(exc) if isinstance(exc, LetheError) else f"{type(exc).__name__} during the run"
            log.error("run %s failed: %s", ctx.run_id, failure)
            rep = failure_report(ctx, started, planned, f"{failure}; see the logs of run {ctx.run_id}")
            path = report.write(rep, report_dir)
            raise RunFailedError(f"run {ctx.run_id} failed part-way: {failure}; report: {path}. Every chunk "
                                 "is done or untouched: a re-run completes the work (once the cause is fixed, "
                                 "if it persists).") from exc
        finally:
            if locked:
                _release(ctx)
        return RunResult(rep, report.write(rep, report_dir))
    finally:
        ctx.dispose()
