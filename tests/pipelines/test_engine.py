"""The retention engine end to end on the reference dataset, on SQLite and PostgreSQL.

Expected counts come from an oracle in this file (pandas over the seeded data), never from Lethe.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines import lock, runner
from pipelines.context import build
from pipelines.errors import LockHeldError
from pipelines.runner import run
from pipelines.seed import seed
from pipelines.store import connect
from tests.support.stores import REFERENCE_POLICY, cutoff, frame, lethe, snapshot, user_tables

AS_OF = dt.date(2026, 11, 22)
ROWS = 6_000
KILL_ROWS = 3_000  # enough for several chunks of 300 in every table, and the held rows
# The test policy's rules, restated independently: table -> (key, subject, retain, from, when_expired, when_deleted)
RULES = {
    "accounts": ("user_id", "user_id", None, None, None, "anonymize"),
    "access_logs": ("id", "user_id", "90d", "ts", "erase", "erase"),
    "orders": ("id", "user_id", "7y", "created_at", "anonymize", "anonymize"),
    "marketing_profiles": ("id", "user_id", "0d", "consent_withdrawn_at", "erase", "erase"),
}
STRENGTH = {None: 0, "keep": 0, "anonymize": 1, "erase": 2}


def oracle(store: str, as_of: dt.date) -> dict[str, dict[str, set]]:
    """Keys to erase, anonymize and move to the vault per table, computed from the data alone."""
    accounts = frame(store, "accounts")
    grace = cutoff(as_of, "30d")
    deleted = set(accounts.loc[pd.to_datetime(accounts.deleted_at) <= grace, "user_id"])
    holds = frame(store, "legal_holds")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    active = holds[holds.released_at.isna() | (pd.to_datetime(holds.released_at) > now)]
    out = {}
    for table, (key, subject, period, col, expired, when_deleted) in RULES.items():
        df = frame(store, table)
        action = pd.Series(0, index=df.index)
        if period:
            due = pd.to_datetime(df[col]) <= cutoff(as_of, period)
            action = action.where(~due, STRENGTH[expired])
        by_subject = df[subject].isin(deleted)
        action = action.where(~by_subject | (action >= STRENGTH[when_deleted]), STRENGTH[when_deleted])
        held = pd.Series(False, index=df.index)
        for h in active.itertuples():
            m = pd.Series(True, index=df.index)
            if pd.notna(h.table_name):
                m &= h.table_name == table
            if pd.notna(h.subject_id):
                m &= df[subject] == h.subject_id
            if pd.notna(h.record_key):
                m &= df[key].astype(str) == str(h.record_key)
            held |= m
        out[table] = {
            "erase": set(df.loc[(action == 2) & ~held, key]),
            "anonymize": set(df.loc[(action == 1) & ~held, key]),
            "vault": set(df.loc[(action > 0) & held, key]),
        }
    return out


@pytest.fixture
def seeded(store_and_vault, pseudonym_key):
    store, vault = store_and_vault
    seed(store, rows=ROWS, seed=7, as_of=AS_OF)
    return store, vault


def test_run_erases_anonymizes_and_moves_exactly_the_due_rows(seeded, tmp_path):
    store, vault = seeded
    expected = oracle(store, AS_OF)
    before = {t: frame(store, t).set_index(RULES[t][0]) for t in RULES}

    result = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)

    assert result.status == "succeeded", result.report["expectations"]
    for table, keys in expected.items():
        counts = result.report["tables"][table]
        assert counts["erased"] == len(keys["erase"]), table
        assert counts["anonymized"] == len(keys["anonymize"]), table
        assert counts["moved_to_vault"] == len(keys["vault"]), table
        after = frame(store, table).set_index(RULES[table][0])
        assert not (keys["erase"] | keys["vault"]) & set(after.index), f"{table}: erased/moved rows remain"
        untouched = before[table].drop(index=list(keys["erase"] | keys["anonymize"] | keys["vault"]))
        pd.testing.assert_frame_equal(after.loc[untouched.index], untouched, check_dtype=False)
        if keys["anonymize"] and "email" in after.columns:
            changed = after.loc[list(keys["anonymize"]), "email"]
            original = before[table].loc[list(keys["anonymize"]), "email"]
            assert not (changed == original).any(), f"{table}: an email survived anonymization"
    assert sum(len(k["vault"]) for k in expected.values()) > 0, "the dataset must exercise the vault"
    assert result.report["aggregates"]["registration_stats"]["folded"] == len(expected["accounts"]["anonymize"])


def test_second_run_and_earlier_date_change_nothing(seeded, tmp_path):
    store, vault = seeded
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    tables = user_tables(store)
    first_store, first_vault = snapshot(store, tables), snapshot(vault)

    again = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    earlier = run(REFERENCE_POLICY, AS_OF - dt.timedelta(days=40), report_dir=tmp_path / "r", store=store,
                  vault=vault)

    for result in (again, earlier):
        assert result.status == "succeeded"
        assert all(t["erased"] == t["anonymized"] == t["moved_to_vault"] == 0
                   for t in result.report["tables"].values())
        assert result.report["ledger"]["entries"] == 0
    assert snapshot(store, tables) == first_store
    assert snapshot(vault) == first_vault


def test_dry_run_writes_nothing(seeded, tmp_path):
    store, vault = seeded
    expected = oracle(store, AS_OF)
    before = snapshot(store)

    result = run(REFERENCE_POLICY, AS_OF, dry_run=True, report_dir=tmp_path / "r", store=store, vault=vault)

    assert result.report["dry_run"] is True
    assert result.report["tables"]["access_logs"]["erased"] == len(expected["access_logs"]["erase"])
    assert result.report["tables"]["orders"]["anonymized"] == len(expected["orders"]["anonymize"])
    assert snapshot(store) == before
    if vault.startswith("sqlite:///"):
        assert not os.path.exists(vault.removeprefix("sqlite:///")), "a dry run created the vault file"
    else:
        assert snapshot(vault) == {}


def _killed_then_resumed(store: str, vault: str, tmp_path, fault: str) -> None:
    env = {"LETHE_FAULT": fault, "LETHE_CHUNK_SIZE": "300"}
    args = ("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
            "--vault", vault, "--report-dir", str(tmp_path / "r"))
    killed = lethe(*args, env=env)
    assert killed.returncode in (-9, 137), killed.stderr[-500:]
    resumed = lethe(*args)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]


def _comparable_vault(url: str) -> dict:
    """Vault contents minus the provenance that legitimately differs between runs (run id, moved-at)."""
    out = {}
    for table in user_tables(url):
        df = frame(url, table).drop(columns=["lethe_run_id", "lethe_moved_at"])
        out[table] = sorted(map(repr, df.itertuples(index=False, name=None)))
    return out


@pytest.mark.parametrize("fault", ["apply.chunk:2", "vault.after_copy", "vault.after_verify", "vault.mid_delete"])
def test_killed_run_then_normal_run_equals_uninterrupted_run(store_and_vault, pseudonym_key, tmp_path, pg, fault):
    store, vault = store_and_vault
    if store.startswith("sqlite"):
        control_store, control_vault = (f"sqlite:///{tmp_path / 'control.db'}",
                                        f"sqlite:///{tmp_path / 'control_vault.db'}")
    else:
        control_store, control_vault = pg.url(pg.create_database("ctl")), pg.url(pg.create_database("ctlv"))
    for url in (store, control_store):
        seed(url, rows=KILL_ROWS, seed=11, as_of=AS_OF)

    _killed_then_resumed(store, vault, tmp_path, fault)
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "c", store=control_store, vault=control_vault)

    tables = user_tables(store)
    assert snapshot(store, tables) == snapshot(control_store, tables)
    assert _comparable_vault(vault) == _comparable_vault(control_vault)
    verify = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert verify.returncode == 0, verify.stderr


def test_commands_that_only_read_leave_a_sqlite_store_byte_identical(sqlite_url, pseudonym_key, tmp_path):
    """check, a dry run and a run refused for a bad policy write nothing, not even SQLite's journal mode;
    the first real run puts the store in WAL mode."""
    import hashlib
    import sqlite3
    from pathlib import Path

    seed(sqlite_url, rows=1_000, seed=3, as_of=AS_OF)
    path = Path(sqlite_url.split(":///", 1)[1])
    vault = tmp_path / "vault.db"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    bad = tmp_path / "bad.yaml"
    bad.write_text(REFERENCE_POLICY.read_text().replace("pseudonymize", "pseudonymise", 1))
    where = ["--store", sqlite_url, "--vault", f"sqlite:///{vault}", "--report-dir", str(tmp_path / "r")]

    check = lethe("check", "--policy", str(REFERENCE_POLICY), "--store", sqlite_url)
    dry = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", str(AS_OF), "--dry-run", *where)
    refused = lethe("run", "--policy", str(bad), "--as-of", str(AS_OF), *where)

    assert (check.returncode, dry.returncode, refused.returncode) == (0, 0, 2), refused.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.glob("*.db*")) == [path.name]  # no -wal, -journal or vault file
    assert lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", str(AS_OF), *where).returncode == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_mistyped_sqlite_store_path_is_refused_and_nothing_is_created(pseudonym_key, tmp_path):
    """SQLite makes an empty database of any path it opens: a typo must not become a store that a run
    sweeps, a check validates or a ledger verification reports as "empty" with exit 0."""
    missing = tmp_path / "no_such_dir" / "lethe.db"
    url = f"sqlite:///{missing}"
    policy = ["--policy", str(REFERENCE_POLICY)]
    commands = {
        "run": ["run", *policy, "--as-of", str(AS_OF), "--store", url, "--report-dir", str(tmp_path / "r")],
        "plan": ["plan", *policy, "--as-of", str(AS_OF), "--store", url],
        "check": ["check", *policy, "--store", url],
        "ledger verify": ["ledger", "verify", *policy, "--store", url],
    }
    for name, args in commands.items():
        proc = lethe(*args)
        assert proc.returncode == 2, (name, proc.returncode, proc.stdout, proc.stderr)
        assert f"no SQLite database at {missing}" in proc.stderr, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no directory, database or report written



def test_an_unreachable_store_is_bad_input_for_every_command_never_a_traceback(pseudonym_key, tmp_path):
    """Exit 2 naming the store without its password. For `ledger verify` this matters most: exit 1 means
    a broken chain, and an unreachable database must not read as tampering."""
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = secrets.token_hex(8)
    url = f"postgresql+psycopg://lethe:{password}@127.0.0.1:{port}/store"
    policy = ["--policy", str(REFERENCE_POLICY)]
    commands = {
        "run": ["run", *policy, "--as-of", str(AS_OF), "--store", url, "--report-dir", str(tmp_path / "r")],
        "check": ["check", *policy, "--store", url],
        "ledger verify": ["ledger", "verify", *policy, "--store", url],
        "holds": ["holds", *policy, "--store", url],
        "seed": ["seed", "--store", url, "--rows", "10"],
    }
    for name, args in commands.items():
        proc = lethe(*args)
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-2000:])
        assert f"cannot reach the store at postgresql+psycopg://lethe:***@127.0.0.1:{port}/store" in proc.stderr
        assert password not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr, name
    assert not (tmp_path / "r").exists()


def test_a_report_directory_that_cannot_be_made_is_refused_before_any_data_is_touched(sqlite_url, pseudonym_key,
                                                                                      tmp_path):
    """A run whose report cannot be written would leave compliance staff nothing to read: exit 2 first."""
    import hashlib
    from pathlib import Path

    seed(sqlite_url, rows=500, seed=3, as_of=AS_OF)
    path = Path(sqlite_url.split(":///", 1)[1])
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    reports = blocker / "reports"

    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", str(AS_OF), "--store", sqlite_url,
                 "--vault", f"sqlite:///{tmp_path / 'vault.db'}", "--report-dir", str(reports))

    assert proc.returncode == 2, proc.stderr
    assert f"cannot create the report directory {reports} (Not a directory)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    index = lethe("report", "--report-dir", str(reports))
    assert index.returncode == 2 and f"no report directory at {reports}" in index.stderr

def test_second_concurrent_run_refuses(seeded, tmp_path):
    store, vault = seeded
    engine = connect(store)
    lock.acquire(engine, "run-held-by-someone-else", pid=os.getpid())
    try:
        proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
                     "--vault", vault, "--report-dir", str(tmp_path / "r"))
    finally:
        lock.release(engine, "run-held-by-someone-else")
        engine.dispose()
    assert proc.returncode == 3
    assert "another Lethe run (run-held-by-someone-else" in proc.stderr
    assert "runs never overlap" in proc.stderr


def test_lock_of_a_dead_process_is_taken_over(seeded, tmp_path):
    store, vault = seeded
    engine = connect(store)
    lock.acquire(engine, "run-that-died", pid=2 ** 22 + 12345)  # no such pid
    engine.dispose()
    result = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    assert result.status == "succeeded"


def test_two_runs_taking_over_one_dead_lock_at_once_on_postgresql_get_it_once(pg, monkeypatch):
    """Both read the dead run's row, both UPDATE it; under READ COMMITTED the second UPDATE re-checks its
    WHERE after the first commits and matches nothing: that run must be refused, not told it holds the store."""
    url = pg.url(pg.create_database("lock"))
    engine = connect(url)
    lock.acquire(engine, "run-that-died", pid=2 ** 22 + 12345)  # no such pid
    real = lock._stale
    monkeypatch.setattr(lock, "_stale", lambda row, after: (real(row, after), time.sleep(1.0))[0])
    outcome = {}

    def take(run_id: str) -> None:
        mine = connect(url)
        try:
            lock.acquire(mine, run_id, pid=None)
            outcome[run_id] = "taken"
        except LockHeldError:
            outcome[run_id] = "refused"
        finally:
            mine.dispose()

    threads = [threading.Thread(target=take, args=(f"run-{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome.values()) == ["refused", "taken"], outcome
    assert lock.holder(engine) == next(r for r, o in outcome.items() if o == "taken")
    engine.dispose()


def test_the_lock_is_heartbeated_while_a_step_works_and_a_run_that_lost_it_stops(seeded, tmp_path):
    """A long step (a plan, a verification) never looks dead: a thread refreshes the lock meanwhile. A run
    whose lock was taken over anyway (its process was suspended for longer than the stale limit) stops at
    its next chunk with exit 3 and an error report, instead of working beside the run that took over."""
    store, vault = seeded
    engine = connect(store)
    lock.acquire(engine, "run-a", pid=os.getpid())
    read_beat = sa.select(lock.LOCK.c.heartbeat_at).where(lock.LOCK.c.run_id == "run-a")
    with engine.connect() as conn:
        first = conn.execute(read_beat).scalar_one()
    with lock.heartbeating(engine, "run-a", every=0.05):
        time.sleep(1.2)
    with engine.connect() as conn:
        assert conn.execute(read_beat).scalar_one() > first
    lock.release(engine, "run-a")

    stolen = threading.Event()

    def take_over() -> None:  # what a run on another host does once the lock looks stale
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stolen.is_set():
            with engine.begin() as conn:
                if conn.execute(sa.update(lock.LOCK).where(lock.LOCK.c.run_id != "thief")
                                .values(run_id="thief")).rowcount:
                    stolen.set()
            time.sleep(0.005)

    thief = threading.Thread(target=take_over)
    thief.start()
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
                 "--vault", vault, "--report-dir", str(tmp_path / "r"), env={"LETHE_CHUNK_SIZE": "10"})
    thief.join()
    engine.dispose()

    assert stolen.is_set() and proc.returncode == 3, proc.stderr[-2000:]
    assert "lost the store lock: another run took it over" in proc.stderr
    report = json.loads(next((tmp_path / "r").glob("*.json")).read_text())
    assert report["status"] == "error" and "lost the store lock" in report["error"]
    assert frame(store, "lethe_run_lock").run_id.tolist() == ["thief"]  # the thief's lock left alone


@pytest.mark.parametrize("tamper", [
    "UPDATE lethe_ledger SET row_count = row_count + 1 WHERE seq = 3",
    "DELETE FROM lethe_ledger WHERE seq = 3",
    "UPDATE lethe_ledger SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END WHERE seq IN (3, 4)",
])
def test_tampered_ledger_fails_verification_naming_the_entry(seeded, tmp_path, tamper):

    store, vault = seeded
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    ok = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert ok.returncode == 0 and "OK" in ok.stdout
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        if "CASE" in tamper:  # swap two entries via negative seqs: both databases check uniqueness per row
            conn.execute(sa.text("UPDATE lethe_ledger SET seq = -seq WHERE seq IN (3, 4)"))
            conn.execute(sa.text("UPDATE lethe_ledger SET seq = CASE seq WHEN -3 THEN 4 ELSE 3 END WHERE seq < 0"))
        else:
            conn.execute(sa.text(tamper))
    engine.dispose()
    bad = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert bad.returncode == 1
    assert "BROKEN at entry 3" in bad.stderr or "BROKEN at entry 4" in bad.stderr


def _ledger(store: str, sql: str) -> int | None:
    """Run `sql` on the store as an intruder would; return the ledger's last seq afterwards."""
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
        last = conn.execute(sa.text("SELECT max(seq) FROM lethe_ledger")).scalar()
    engine.dispose()
    return last


@pytest.mark.parametrize("cut", [1, 3])
def test_entries_cut_from_the_end_fail_verification_even_after_another_run(seeded, tmp_path, cut):
    """Removing the newest entries breaks no link; the recorded head catches it, and a later run links
    to that head, so the cut stays visible as a gap instead of being papered over."""
    store, vault = seeded
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    last = _ledger(store, "SELECT 1")
    _ledger(store, f"DELETE FROM lethe_ledger WHERE seq > {last - cut}")

    bad = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert bad.returncode == 1
    removed = (f"entry {last} at the end of the chain was" if cut == 1
               else f"entries {last - 2} to {last} at the end of the chain were")
    assert f"BROKEN at entry {last - cut + 1}: {removed} removed" in bad.stderr

    later = run(REFERENCE_POLICY, AS_OF + dt.timedelta(days=40), report_dir=tmp_path / "r", store=store, vault=vault)
    assert later.report["ledger"]["entries"] > 0
    still = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert still.returncode == 1 and f"BROKEN at entry {last + 1}: entry {last - cut + 1} is missing" in still.stderr


def test_a_ledger_without_its_head_record_fails_verification(seeded, tmp_path):
    store, vault = seeded
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    last = _ledger(store, "DELETE FROM lethe_ledger_head")

    bad = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert bad.returncode == 1
    assert f"BROKEN at entry {last}: the chain's head record (lethe_ledger_head) is missing" in bad.stderr


def _analyzed(store: str) -> dict[str, object]:
    engine = connect(store)
    try:
        with engine.connect() as conn:
            return dict(conn.exec_driver_sql("SELECT relname, last_analyze FROM pg_stat_user_tables").all())
    finally:
        engine.dispose()


def _analyzed_seeded_store(pg) -> tuple[str, str, dict[str, float], dict[str, object]]:
    store, vault = pg.url(pg.create_database("store")), pg.url(pg.create_database("vault"))
    seed(store, rows=ROWS, seed=7, as_of=AS_OF)
    engine = connect(store)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        rows = dict(conn.exec_driver_sql("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'").all())
    engine.dispose()
    return store, vault, rows, _analyzed(store)


def _assert_only_bulk_changes_analyzed(store: str, tables: dict, rows: dict, before: dict) -> None:
    after = _analyzed(store)
    changed = {t: c["erased"] + c["anonymized"] + c["moved_to_vault"] for t, c in tables.items()}
    bulk = {t for t, n in changed.items() if n > 50 + 0.1 * rows[t]}
    light = {t for t, n in changed.items() if n <= 50 + 0.1 * rows[t]}
    assert "access_logs" in bulk and light, (changed, rows)
    assert {t for t in bulk if after[t] == before[t]} == set(), "a table changed in bulk kept stale statistics"
    assert {t for t in light | {"legal_holds"} if after[t] != before[t]} == set(), "a table changed little was analyzed"


def test_postgresql_tables_changed_in_bulk_are_analyzed_before_verification(pg, pseudonym_key, tmp_path):
    """Verification reads what the apply step just changed; with statistics from before a mass erase
    PostgreSQL's planner walks every deleted row (benchmarks/README.md). A table whose changes pass
    autovacuum's threshold (50 + 10% of its rows) is ANALYZEd at once; others are left to autovacuum."""
    store, vault, rows, before = _analyzed_seeded_store(pg)
    result = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    _assert_only_bulk_changes_analyzed(store, result.report["tables"], rows, before)


def test_the_dags_verify_task_analyzes_what_the_apply_tasks_changed(pg, pseudonym_key, tmp_path):
    """The DAG verifies in a task of its own, without the apply tasks' counts: it reads the changes from
    the statistics view, which the apply tasks' connections report when they close."""
    store, vault, rows, before = _analyzed_seeded_store(pg)
    ctx = build(REFERENCE_POLICY, AS_OF, store=store, vault=vault)
    try:
        planned, moved, released, applied = runner.execute(ctx)
        tables = runner.assemble(ctx, started_at="", planned=planned, moved=moved, released=released,
                                 applied=applied, expectations=[], status="succeeded")["tables"]
    finally:
        ctx.dispose()  # as an apply task's process ends
    assert {t: _analyzed(store)[t] for t in before} == before  # nothing ANALYZEd by the apply steps

    ctx = build(REFERENCE_POLICY, AS_OF, store=store, vault=vault)
    try:
        outcomes = runner.verify(ctx)
    finally:
        ctx.dispose()
    assert outcomes and all(o["success"] for o in outcomes), [o for o in outcomes if not o["success"]]
    _assert_only_bulk_changes_analyzed(store, tables, rows, before)
