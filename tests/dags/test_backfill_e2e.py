"""Backfills under a real scheduler: runs of one store never overlap; a backfill leaves the store as one run would.

Airflow 3.3 starts up to ten dates of a backfill at once whatever the DAG's `max_active_runs`, so the
DAGs serialise themselves on the store lock: the first task waits for it, one waiting run per DAG.
PostgreSQL is both Airflow's metadata database and the store here, with LocalExecutor running mapped
apply partitions in parallel. Sixteen daily runs (more than the ten Airflow starts at once), then a repeat
and earlier dates that change nothing; LETHE_E2E_FROM=2026-06-01 backfills the whole month.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dags.conftest import BIN, SEED_AS_OF, airflow_env, run, seed, write_policy

DAG_ID = "lethe_e2e"
FROM = os.environ.get("LETHE_E2E_FROM", "2026-06-15")  # sixteen daily runs up to SEED_AS_OF
# Re-run with `--reprocess-behavior completed` (the last days by default; LETHE_E2E_REPEAT_FROM=2026-06-01
# repeats the whole window), then backfill dates before every completed run.
REPEAT_FROM = os.environ.get("LETHE_E2E_REPEAT_FROM", "2026-06-28")
EARLIER = ("2026-05-30", "2026-05-31")
# Only the next run waits for the lock (one waiter per DAG), for one run at most: the bound need not grow
# with the window.
LOCK_WAIT = 600
PRELOAD = "pipelines.airflow_tasks,pipelines.verify,expectations.validate"
TABLES = ["accounts", "access_logs", "orders", "marketing_profiles", "registration_stats"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dump(url: str) -> dict[str, list[tuple]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: sorted((tuple(r) for r in conn.execute(sa.text(f'SELECT * FROM "{t}"'))), key=repr)
                    for t in TABLES}
    finally:
        engine.dispose()


def session_groups(sid: int) -> set[int]:
    """The process groups of the processes still in session `sid`."""
    groups = set()
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getsid(int(entry)) == sid:
                groups.add(os.getpgid(int(entry)))
        except OSError:  # gone meanwhile, or not ours to inspect
            pass
    return groups


class Airflow:
    """scheduler + dag-processor + api-server, each in its own process group, killed as a group."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.procs = env, logs, []

    def start(self) -> None:
        for name in ("api-server", "dag-processor", "scheduler"):
            out = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            # the scheduler's log server would bind every interface: not in a test
            extra = ["--skip-serve-logs"] if name == "scheduler" else []
            self.procs.append(subprocess.Popen([str(BIN / "airflow"), name, *extra], env=self.env, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Airflow starts each task in a process group of its own, in the scheduler's session: a task
            # still running (a waiting sensor) would outlive the scheduler's group.
            for group in {p.pid, *session_groups(p.pid)}:
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def tail(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted(self.logs.glob("*.log")))


def wait_for(check, timeout: float, what: str, airflow: Airflow, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for p in airflow.procs:
            assert p.poll() is None, f"an Airflow process died while waiting for {what}\n{airflow.tail()}"
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}\n{airflow.tail()}")


def run_states(meta: sa.Engine, since: float = 0) -> dict[str, str]:
    with meta.connect() as conn:
        rows = conn.execute(sa.text("SELECT run_id, state FROM dag_run WHERE dag_id = :d"), {"d": DAG_ID}).all()
    return dict(rows)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a safety net for a hang: ~4 minutes on 2 idle cores (sixteen runs)
def test_backfills_serialise_on_the_store_and_leave_it_as_one_run_would(pg, tmp_path, lethe_key):
    meta_url, store, twin = (pg.url(pg.create_database(p)) for p in ("airflow", "store", "twin"))
    vault, twin_vault = pg.url(pg.create_database("vault")), pg.url(pg.create_database("twinvault"))
    policy = write_policy(tmp_path / "policies", "e2e", store, vault)
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = airflow_env(
        home, policy.parent, tmp_path / "reports", lethe_key,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=meta_url, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=meta_url,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor", AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__API__HOST="127.0.0.1", AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32), AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5", AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        # no scheduled run for "today" when the DAG is unpaused: only the backfills act on the store
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        # Each task is a fork of a LocalExecutor worker: preload the engine, pandas, SQLAlchemy and GX into the
        # workers once (docs/airflow.md, "Production") instead of importing them in every task.
        AIRFLOW__SCHEDULER__MP_START_METHOD="forkserver", AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=PRELOAD,
        # A run is ~11 short tasks in sequence; the scheduler queues a task's successor on its next loop and
        # sleeps between idle loops (1 s by default). The DAG file does not change: no re-parsing meanwhile.
        AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5", AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="600",
        LETHE_LOCK_POKE_SECONDS="1", PYTHONUNBUFFERED="1", LETHE_LOCK_WAIT_SECONDS=str(LOCK_WAIT),
        LETHE_APPLY_PARTITIONS="2",
    )
    seed(store, env)
    seed(twin, env)
    run([str(BIN / "airflow"), "db", "migrate"], env, timeout=600)
    meta = sa.create_engine(meta_url)
    airflow = Airflow(env, tmp_path)
    started = time.monotonic()
    try:
        airflow.start()

        def parsed() -> bool:
            with meta.connect() as conn:
                return bool(conn.execute(sa.text("SELECT 1 FROM dag WHERE dag_id = :d"), {"d": DAG_ID}).first())

        wait_for(parsed, 120, "the DAG to be parsed", airflow)
        run([str(BIN / "airflow"), "dags", "unpause", DAG_ID], env)

        def no_open_backfill() -> bool:
            with meta.connect() as conn:
                return not conn.execute(sa.text("SELECT count(*) FROM backfill WHERE dag_id = :d AND "
                                                "completed_at IS NULL"), {"d": DAG_ID}).scalar()

        def backfill(start: str, end: str, *extra: str) -> None:
            # Airflow takes one backfill per DAG at a time and marks the last one complete within 30 s of its
            # last run: wait for that, then retry (bounded) while it still says another backfill is running.
            wait_for(no_open_backfill, 120, "the previous backfill to be marked complete", airflow, every=1)
            deadline = time.monotonic() + 300
            while True:
                proc = run([str(BIN / "airflow"), "backfill", "create", "--dag-id", DAG_ID, "--from-date", start,
                            "--to-date", end, *extra], env, check=False)
                if proc.returncode == 0:
                    return
                assert "AlreadyRunningBackfill" in proc.stderr and time.monotonic() < deadline, proc.stderr[-3000:]
                time.sleep(3)

        def all_done(expected: int):
            def check():
                states = run_states(meta)
                done = [s for s in states.values() if s in ("success", "failed")]
                return states if len(done) >= expected and len(done) == len(states) else None
            return check

        # The window, all dates at once: every run succeeds, one after another on the store.
        days = (dt.date.fromisoformat(SEED_AS_OF) - dt.date.fromisoformat(FROM)).days + 1
        backfill(FROM, SEED_AS_OF)
        states = wait_for(all_done(days), 120 * days, "the backfill", airflow)
        assert set(states.values()) == {"success"}, states
        window_took = time.monotonic() - started

        # The store is exactly what one run as of the last date leaves.
        run([str(BIN / "lethe"), "run", "--policy", str(policy), "--as-of", SEED_AS_OF, "--store", twin,
             "--vault", twin_vault, "--report-dir", str(tmp_path / "cli")], env)
        after_window, single = dump(store), dump(twin)
        with meta.connect() as conn:
            dates = sorted(str(d) for d in conn.execute(sa.text(
                "SELECT logical_date FROM dag_run WHERE dag_id = :d"), {"d": DAG_ID}).scalars())
        differing = {t: (len(after_window[t]), len(single[t]), len(set(after_window[t]) ^ set(single[t])))
                     for t in TABLES if after_window[t] != single[t]}
        assert not differing, f"tables (rows, rows in one run, rows differing): {differing}; runs: {dates}"

        # Mapped partitions really ran side by side against PostgreSQL.
        with meta.connect() as conn:
            spans = conn.execute(sa.text(
                "SELECT run_id, start_date, end_date FROM task_instance WHERE dag_id = :d "
                "AND task_id LIKE 'apply_%.apply' AND state = 'success'"), {"d": DAG_ID}).all()
        overlaps = sum(1 for a in spans for b in spans if a is not b and a.run_id == b.run_id
                       and a.start_date < b.end_date and b.start_date < a.end_date)
        assert overlaps > 0, "no two apply partitions of one run overlapped in time"

        # One run at a time on the store: from taking the lock to the report (which releases it), no two
        # runs overlap.
        with meta.connect() as conn:
            held = sorted(conn.execute(sa.text(
                "SELECT l.end_date, r.start_date, l.run_id FROM task_instance l JOIN task_instance r "
                "ON r.dag_id = l.dag_id AND r.run_id = l.run_id AND r.task_id = 'report' "
                "WHERE l.dag_id = :d AND l.task_id = 'wait_for_store_lock'"), {"d": DAG_ID}).all())
        assert len(held) == days
        assert all(a[1] <= b[0] for a, b in zip(held, held[1:], strict=False)), held

        # Re-running completed dates, and backfilling dates before completed later runs, change nothing.
        def backfills_finished(expected_runs: int):
            # one backfill per DAG at a time: wait for its completion, not only for run states
            return lambda: all_done(expected_runs)() if no_open_backfill() else None

        repeated = (dt.date.fromisoformat(SEED_AS_OF) - dt.date.fromisoformat(REPEAT_FROM)).days + 1
        repeat_started = time.time()
        backfill(REPEAT_FROM, SEED_AS_OF, "--reprocess-behavior", "completed")
        states = wait_for(backfills_finished(days), 120 * repeated + 120, "the repeated backfill", airflow)
        assert set(states.values()) == {"success"}, states
        rewritten = [p for p in (tmp_path / "reports").glob("*.json") if p.stat().st_mtime > repeat_started]
        assert len(rewritten) == repeated, "the repeated dates did not run again"
        assert dump(store) == after_window
        backfill(*EARLIER)
        states = wait_for(backfills_finished(days + len(EARLIER)), 600, "the earlier backfill", airflow)
        assert set(states.values()) == {"success"}, states
        assert dump(store) == after_window
        reports = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*.json")]
        assert len({r["run_id"] for r in reports}) == len(states) and all(r["status"] == "succeeded" for r in reports)
        print(f"backfill ({days} runs): {window_took:.0f}s; repeat ({repeated} runs) and earlier "
              f"({len(EARLIER)} runs): {time.monotonic() - started - window_took:.0f}s; "
              f"whole test: {time.monotonic() - started:.0f}s")
    finally:
        airflow.stop()
        meta.dispose()
