"""The bodies of the Airflow tasks, as plain Python, so the DAG file stays declarative and cheap to parse.

Each function opens its own RunContext (tasks run in separate processes, possibly on separate
machines), proves it still holds the store lock for this Airflow run, calls one engine step and
returns a small JSON-able value for XCom. Airflow itself is imported lazily and only for
Connections, so the engine keeps no import-time dependency on it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import lock, report, runner, steps
from pipelines.context import RunContext, build, safe_run_id
from pipelines.errors import InputError, LockHeldError, StepFailedError, UnreachableError

log = logging.getLogger("lethe.airflow")

STORE_CONN_ID = "lethe_store"
VAULT_CONN_ID = "lethe_vault"
_SCHEMES = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


def as_of(context: Mapping[str, Any]) -> dt.date:
    """The run's as-of date: its logical date (else its data interval end), in UTC. Never the wall clock."""
    stamp = context.get("logical_date") or context.get("data_interval_end")
    if stamp is None:
        raise InputError("this DAG run has neither a logical date nor a data interval end; trigger it "
                         "with a logical date (the as-of date of the run)")
    return stamp.astimezone(dt.UTC).date()


def run_id(context: Mapping[str, Any]) -> str:
    """Lethe's run id for an Airflow run: the same for every task (and retry) of that DAG run."""
    return safe_run_id(str(context["run_id"]))


def sqlalchemy_url(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow Connection (postgres, sqlite, or any SQLAlchemy dialect name)."""
    import sqlalchemy as sa

    if conn.conn_type == "sqlite":  # Airflow keeps a SQLite file's path in `host`
        return f"sqlite:///{conn.host}"
    extra = conn.extra_dejson or {}
    scheme = extra.get("sqlalchemy_scheme") or _SCHEMES.get(conn.conn_type, conn.conn_type)
    url = sa.engine.URL.create(scheme, username=conn.login or None, password=conn.password or None,
                               host=conn.host or None, port=conn.port or None, database=conn.schema or None)
    return url.render_as_string(hide_password=False)


def connection_url(conn_id: str) -> str | None:
    """The URL of an Airflow Connection, or None when it is not defined (then the policy's URL applies)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return sqlalchemy_url(conn)


def fail_at_once(error: Exception) -> Exception:
    """Airflow's no-retry failure carrying Lethe's message, for errors a retry cannot clear."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(error))


def retry_may_clear(error: InputError | StepFailedError) -> bool:
    """A database that did not answer, or a transient database error, may pass on a retry; bad input (a
    policy, key, hold or report directory) and a constraint or data error recur on every attempt.
    """
    return error.transient if isinstance(error, StepFailedError) else isinstance(error, UnreachableError)


def open_context(policy: str | Path, context: Mapping[str, Any]) -> RunContext:
    """Build (and validate) the RunContext for this task: Connections first, then LETHE_*_URL, then the policy.

    One worker per task: the DAG's concurrency is its mapped partitions (the `partitions` param).
    """
    try:
        return build(policy, as_of(context), store=connection_url(STORE_CONN_ID),
                     vault=connection_url(VAULT_CONN_ID), run_id=run_id(context), workers=1)
    except InputError as exc:
        if retry_may_clear(exc):
            raise
        raise fail_at_once(exc) from None


@contextmanager
def holding_store(policy: str | Path, context: Mapping[str, Any]) -> Iterator[RunContext]:
    """The RunContext, with the store lock re-taken for this run (re-entrant) and heartbeated meanwhile.

    Re-taking proves no other run took the store over since the first task; the heartbeat thread keeps
    a long step from looking dead to a waiting run.
    """
    ctx = open_context(policy, context)
    try:
        lock.acquire(ctx.store, ctx.run_id)
        with lock.heartbeating(ctx.store, ctx.run_id):
            try:
                yield ctx
            except (StepFailedError, InputError) as exc:
                if retry_may_clear(exc):
                    raise  # Airflow retries the task; its chunks done so far stay done
                raise fail_at_once(exc) from None
    finally:
        ctx.dispose()


_waiting: dict[str, Any] = {}  # policy -> store engine, kept across the pokes of one sensor process


def try_lock(policy: str | Path, context: Mapping[str, Any]) -> dict | None:
    """Take the store for this run if it is free (or already ours); None while another run holds it.

    Cheap on purpose (the sensor pokes every few seconds, in one process): the policy and the Connection
    are read, and the engine made, on the first poke only; each poke touches only the lock row. `plan`
    validates everything else.
    """
    from pipelines import store as stores
    from pipelines.policy import load_policy

    waiter = str(policy)
    engine = _waiting.get(waiter)
    if engine is None:
        try:
            url = stores.resolve_url(connection_url(STORE_CONN_ID), "LETHE_STORE_URL", load_policy(policy).store,
                                     "store")
            engine = _waiting[waiter] = stores.connect(url)
        except InputError as exc:
            raise fail_at_once(exc) from None
    rid = run_id(context)
    busy = False
    try:
        lock.acquire(engine, rid)  # no pid: tasks are short-lived processes
    except LockHeldError:
        busy = True
        log.info("store busy (held by %s); %s waits", lock.holder(engine), rid)
        return None
    finally:
        if not busy:  # taken, or failed: this wait is over
            _waiting.pop(waiter).dispose()
    return {"run_id": rid, "as_of": as_of(context).isoformat(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def plan(policy: str | Path, context: Mapping[str, Any], report_dir: str | Path | None = None) -> dict:
    with holding_store(policy, context) as ctx:
        if report_dir is not None:  # as `lethe run` does: a report that cannot be written, before any change
            report.prepare_dir(report_dir)
        steps.prepare_store(ctx)  # here, not by parallel apply tasks racing to create the tables
        return steps.plan(ctx)


def move_held_rows(policy: str | Path, context: Mapping[str, Any]) -> dict:
    with holding_store(policy, context) as ctx:
        return steps.move_held_rows(ctx)


def release_vault_rows(policy: str | Path, context: Mapping[str, Any]) -> dict:
    with holding_store(policy, context) as ctx:
        return steps.release_vault_rows(ctx)


def phase_tables(ctx: RunContext, phase: str) -> list[str]:
    """The tables of an apply phase, in the engine's order.

    `tables` is every policy table but the subjects table; `subjects` is the subjects table alone, applied
    last so the other tables still find deleted subjects' ids.
    """
    last = ctx.policy.subjects.table if ctx.policy.subjects else None
    order = ctx.policy.table_order()
    if phase == "subjects":
        return [t for t in order if t == last]
    return [t for t in order if t != last]


def partitions(policy: str | Path, context: Mapping[str, Any], phase: str, count: int) -> list[dict]:
    """Disjoint key ranges of the due rows of this phase's tables, one mapped apply task each.

    The outer ends are left open, so a range set computed now covers every due row whatever happens
    before a partition is (re)tried.
    """
    with holding_store(policy, context) as ctx:
        work = []
        for name in phase_tables(ctx, phase):
            bounds = steps.partitions(ctx, name, max(1, count))
            if not bounds:
                continue
            bounds[0][0], bounds[-1][1] = None, None
            for i, (lo, hi) in enumerate(bounds, start=1):
                work.append({"table": name, "lo": lo, "hi": hi, "part": i, "of": len(bounds)})
        return work


def apply_partition(policy: str | Path, context: Mapping[str, Any], work: Mapping[str, Any]) -> dict:
    """Erase or anonymize one key range of one table: chunked transactions, so a retry finishes the rest."""
    with holding_store(policy, context) as ctx:
        return steps.apply(ctx, work["table"], [work["lo"], work["hi"]])


def coarsen(policy: str | Path, context: Mapping[str, Any]) -> dict:
    with holding_store(policy, context) as ctx:
        return steps.coarsen(ctx)


def verify(policy: str | Path, context: Mapping[str, Any]) -> list[dict]:
    # Importing GX logs a few hundred INFO lines about its API docs; keep them out of every run's task log.
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    with holding_store(policy, context) as ctx:
        return runner.verify(ctx)


def merge_applied(results: list[Mapping[str, Any]]) -> dict:
    """Sum the mapped apply results per table, in the shape runner.assemble expects."""
    out: dict[str, dict] = {}
    for r in results:
        t = out.setdefault(r["table"], {"table": r["table"], "erased": 0, "anonymized": 0, "folded": {}})
        t["erased"] += r["erased"]
        t["anonymized"] += r["anonymized"]
        for agg, n in r.get("folded", {}).items():
            t["folded"][agg] = t["folded"].get(agg, 0) + n
    return out


def write_report(policy: str | Path, context: Mapping[str, Any], *, report_dir: str | Path, started_at: str,
                 planned: dict, moved: dict, released: dict, applied: list[Mapping[str, Any]],
                 expectations: list[dict]) -> dict:
    """Assemble and write the run report, then release the store; returns status, path and run id."""
    with holding_store(policy, context) as ctx:
        status = "succeeded" if all(e["success"] for e in expectations) else "failed"
        rep = runner.assemble(ctx, started_at=started_at, planned=planned, moved=moved, released=released,
                              applied=merge_applied(applied), expectations=expectations, status=status)
        path = report.write(rep, report_dir)
        lock.release(ctx.store, ctx.run_id)
        return {"run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "status": status, "report": str(path)}


def release_lock(policy: str | Path, context: Mapping[str, Any]) -> bool:
    """Release the store if this run still holds it (after a failure too); True if it did."""
    ctx = open_context(policy, context)
    try:
        held = lock.holder(ctx.store) == ctx.run_id
        lock.release(ctx.store, ctx.run_id)
        return held
    finally:
        ctx.dispose()
