"""Legal holds and the vault, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.runner import run
from pipelines.seed import seed
from pipelines.vault import checksum
from tests.support.stores import REFERENCE_POLICY, frame, lethe, snapshot

AS_OF = dt.date(2026, 11, 22)


@pytest.fixture
def seeded(store_and_vault, pseudonym_key):
    store, vault = store_and_vault
    seed(store, rows=4_000, seed=5, as_of=AS_OF)
    return store, vault


def _exec(url: str, sql: str, **params) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    engine.dispose()


def _hold(store: str, hold_id: int) -> dict:
    holds = frame(store, "legal_holds").set_index("hold_id")
    return holds.loc[hold_id].to_dict()


def test_due_rows_under_hold_move_byte_identical_and_not_due_held_rows_stay(seeded, tmp_path):
    store, vault = seeded
    held_subject = int(_hold(store, 1)["subject_id"])  # subject-only hold on a deleted account
    logs_hold = _hold(store, 3)                          # subject + access_logs, on a live account
    before_logs = frame(store, "access_logs")
    before_account = frame(store, "accounts").set_index("user_id").loc[held_subject]

    result = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)

    assert result.status == "succeeded"
    vault_accounts = frame(vault, "accounts").set_index("user_id")
    assert held_subject in vault_accounts.index
    copy = vault_accounts.loc[held_subject]
    for col in before_account.index:
        assert str(copy[col]) == str(before_account[col]), col  # untouched: not anonymized
    assert copy["lethe_due_action"] == "anonymize" and copy["lethe_hold_ids"] == "1"
    columns = list(before_logs.columns)
    for row in frame(vault, "access_logs").to_dict("records"):
        clean = {c: (None if pd.isna(row[c]) else row[c]) for c in columns}
        clean["ts"] = pd.Timestamp(clean["ts"]).to_pydatetime()
        assert checksum(clean, columns) == row["lethe_checksum"]
    # the held live subject's recent logs are not due: they stay in the store
    subject_logs = before_logs[before_logs.user_id == logs_hold["subject_id"]]
    after_logs = frame(store, "access_logs")
    recent = subject_logs[pd.to_datetime(subject_logs.ts) > pd.Timestamp(AS_OF) - pd.Timedelta(days=90)]
    assert set(recent.id) <= set(after_logs.id)
    assert result.report["vault"]["moved"] == sum(t["moved_to_vault"] for t in result.report["tables"].values())
    assert result.report["tables"]["access_logs"]["moved_to_vault"] >= 5


def test_when_hold_is_released_then_erased_rows_leave_the_vault_and_anonymized_rows_return(seeded, tmp_path):
    store, vault = seeded
    subject = int(_hold(store, 1)["subject_id"])
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    original_email = frame(vault, "accounts").set_index("user_id").loc[subject, "email"]
    in_vault_logs = (frame(vault, "access_logs").user_id == subject).sum()

    _exec(store, "UPDATE legal_holds SET released_at = :t WHERE hold_id = 1",
          t=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    result = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)

    assert result.status == "succeeded", result.report["expectations"]
    assert subject not in set(frame(vault, "accounts").user_id)
    assert (frame(vault, "access_logs").user_id == subject).sum() == 0
    returned = frame(store, "accounts").set_index("user_id").loc[subject]
    assert returned["email"] != original_email and returned["email"].startswith("lt1.k2026.")
    assert result.report["tables"]["accounts"]["released_returned"] == 1
    assert result.report["tables"]["access_logs"]["released_erased"] == in_vault_logs
    assert result.report["vault"]["released"] >= 1 + in_vault_logs
    assert result.report["aggregates"]["registration_stats"]["folded"] == 1  # folded only now, after release
    again = run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    assert again.report["vault"]["released"] == 0
    assert again.report["aggregates"]["registration_stats"]["folded"] == 0


def test_a_backfill_of_an_earlier_date_honours_a_hold_placed_today(seeded, tmp_path):
    store, vault = seeded
    logs = frame(store, "access_logs")
    old = logs[pd.to_datetime(logs.ts) < pd.Timestamp(AS_OF) - pd.Timedelta(days=150)].iloc[0]
    _exec(store, "INSERT INTO legal_holds (hold_id, subject_id, table_name, record_key, case_ref, placed_at) "
          "VALUES (77, NULL, 'access_logs', :k, 'CASE-TODAY', :t)", k=str(old.id),
          t=dt.datetime.now(dt.UTC).replace(tzinfo=None))

    run(REFERENCE_POLICY, AS_OF - dt.timedelta(days=30), report_dir=tmp_path / "r", store=store, vault=vault)

    assert old.id not in set(frame(store, "access_logs").id)
    moved = frame(vault, "access_logs").set_index("id")
    assert moved.loc[old.id, "lethe_hold_ids"] == "77"


def test_a_hold_with_no_scope_stops_the_run_naming_it(seeded, tmp_path):
    store, vault = seeded
    _exec(store, "INSERT INTO legal_holds (hold_id, case_ref, placed_at) VALUES (99, 'CASE-X', :t)",
          t=dt.datetime(2026, 1, 1))
    before = snapshot(store)
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
                 "--vault", vault, "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "legal hold(s) 99 have no scope" in proc.stderr
    assert snapshot(store) == before


def test_holds_that_would_protect_nothing_stop_the_run_naming_them(seeded, tmp_path):
    """A misspelled table_name, or an empty field, matches no row: the rows legal meant to hold would be
    erased. The run refuses (exit 2) naming the holds and the likely table, and changes nothing; a hold on a
    store table the policy does not cover is fine (Lethe never touches that table)."""
    store, vault = seeded
    placed = dt.datetime(2026, 1, 1)
    _exec(store, "INSERT INTO legal_holds (hold_id, table_name, case_ref, placed_at) VALUES (97, 'acounts', 'C', :t)",
          t=placed)
    _exec(store, "INSERT INTO legal_holds (hold_id, table_name, record_key, case_ref, placed_at) "
          "VALUES (98, 'orders', '', 'C', :t)", t=placed)
    _exec(store, "INSERT INTO legal_holds (hold_id, table_name, case_ref, placed_at) VALUES (96, 'legal_holds', "
          "'C', :t)", t=placed)
    before = snapshot(store)
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
                 "--vault", vault, "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    assert ("legal hold(s) 97 name a table_name that is no table of the store, so they would protect nothing; "
            "did you mean accounts?") in proc.stderr
    assert "legal hold(s) 98 have an empty subject_id, table_name or record_key" in proc.stderr
    assert "96" not in proc.stderr.replace("2026", "")
    assert snapshot(store) == before and not (tmp_path / "r").exists()


def test_holds_command_lists_active_holds_with_counts_only(seeded, tmp_path):
    store, vault = seeded
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    proc = lethe("holds", "--policy", str(REFERENCE_POLICY), "--store", store, "--vault", vault)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split("\t")[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == {"1", "2", "3", "5"}  # hold 4 is released
    assert "vault=0" not in lines["1"]  # the deleted subject's rows are in the vault
    assert "@" not in proc.stdout


def test_release_killed_after_returning_rows_completes_without_duplicates(seeded, tmp_path):
    store, vault = seeded
    run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    _exec(store, "UPDATE legal_holds SET released_at = :t WHERE hold_id IN (1, 2, 3)",
          t=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    args = ("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
            "--vault", vault, "--report-dir", str(tmp_path / "r"))
    killed = lethe(*args, env={"LETHE_FAULT": "release.after_return"})
    assert killed.returncode in (-9, 137)
    resumed = lethe(*args)
    assert resumed.returncode == 0, resumed.stderr
    accounts = frame(store, "accounts")
    assert accounts.user_id.is_unique
    assert all(frame(vault, t).empty for t in ("accounts", "access_logs"))
    stats = frame(store, "registration_stats")
    folded = frame(store, "lethe_ledger").query("action == 'fold'").row_count.sum()
    assert stats.row_count.sum() == folded


def test_store_credentials_cannot_read_the_vault_on_postgresql(pg):
    store_db, vault_db = pg.create_database("seg_store"), pg.create_database("seg_vault")
    pg.admin("CREATE ROLE lethe_store LOGIN PASSWORD 'store-pw'")
    pg.admin("CREATE ROLE lethe_vault LOGIN PASSWORD 'vault-pw'")
    pg.admin(f'REVOKE CONNECT ON DATABASE "{vault_db}" FROM PUBLIC')
    pg.admin(f'GRANT CONNECT, CREATE ON DATABASE "{vault_db}" TO lethe_vault')
    pg.admin(f'GRANT CONNECT, CREATE ON DATABASE "{store_db}" TO lethe_store')
    pg.admin("GRANT CREATE ON SCHEMA public TO lethe_vault", database=vault_db)
    vault_engine = sa.create_engine(pg.url(vault_db, "lethe_vault", "vault-pw"))
    with vault_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE accounts (user_id int primary key, email text)"))
    vault_engine.dispose()

    intruder = sa.create_engine(pg.url(vault_db, "lethe_store", "store-pw"))
    with pytest.raises(sa.exc.OperationalError, match="permission denied for database"):
        with intruder.connect() as conn:
            conn.execute(sa.text("SELECT * FROM accounts"))
    intruder.dispose()
    allowed = sa.create_engine(pg.url(store_db, "lethe_store", "store-pw"))
    with allowed.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    allowed.dispose()


def test_active_holds_without_a_vault_refuse_the_run_before_anything_is_written(sqlite_url, pseudonym_key, tmp_path):
    seed(sqlite_url, rows=1_000, seed=5, as_of=AS_OF)
    before = snapshot(sqlite_url)
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", sqlite_url,
                 "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "legal holds are active but no vault is configured" in proc.stderr
    assert snapshot(sqlite_url) == before


HELD_SUBJECT_POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: r1}
subjects: {table: people, id: pid, deleted_at: deleted_at, erase_after: 30d}
legal_holds: {table: legal_holds}
tables:
  people:
    key: pid
    subject: pid
    retain: {for: 1y, from: created_at}
    when_expired: erase
    when_subject_deleted: anonymize
    columns: {email: pseudonymize}
  notes:
    key: id
    subject: pid
    when_subject_deleted: erase
aggregates:
  people_stats:
    from: people
    dimensions: {domain: {column: email, email_domain: true}}
    min_group_size: 1
"""


def _report(directory) -> dict:
    (path,) = list(directory.glob("*.json"))
    return json.loads(path.read_text())


def test_a_deleted_subject_whose_own_row_is_held_still_has_its_other_rows_processed(store_and_vault, pseudonym_key,
                                                                                  tmp_path):
    """A hold on just the subject's row moves it, and the store's record of the deletion, to the vault;
    the subject's notes are due all the same, in the plan and in the run. Later, a row anonymized (and
    folded) earlier that expires is erased without a second fold, and the plan says so too."""
    store, vault = store_and_vault
    _exec(store, "CREATE TABLE people (pid VARCHAR(20) PRIMARY KEY, email VARCHAR(80), created_at TIMESTAMP, "
                 "deleted_at TIMESTAMP)")
    _exec(store, "CREATE TABLE notes (id INTEGER PRIMARY KEY, pid VARCHAR(20), body VARCHAR(80))")
    _exec(store, "CREATE TABLE legal_holds (hold_id INTEGER PRIMARY KEY, subject_id VARCHAR(20), "
                 "table_name VARCHAR(40), record_key VARCHAR(40), case_ref VARCHAR(40), placed_at TIMESTAMP, "
                 "released_at TIMESTAMP)")
    _exec(store, "INSERT INTO people VALUES ('p-held', 'a@x.io', '2026-01-10 00:00:00', '2026-02-01 00:00:00'), "
                 "('p-free', 'b@x.io', '2026-01-10 00:00:00', '2026-02-01 00:00:00'), "
                 "('p-old', 'c@x.io', '2025-08-01 00:00:00', '2026-02-01 00:00:00')")
    _exec(store, "INSERT INTO notes VALUES (1, 'p-held', 'n1'), (2, 'p-free', 'n2')")
    _exec(store, "INSERT INTO legal_holds VALUES (1, NULL, 'people', 'p-held', 'CASE-1', '2026-01-01 00:00:00', NULL)")
    policy = tmp_path / "p.yaml"
    policy.write_text(HELD_SUBJECT_POLICY)
    where = ["--store", store, "--vault", vault]

    def plan_then_run(as_of: str) -> tuple[dict, dict]:
        plan = lethe("plan", "--policy", str(policy), "--as-of", as_of, *where,
                     "--report-dir", str(tmp_path / f"p{as_of}"))
        done = lethe("run", "--policy", str(policy), "--as-of", as_of, *where, "--report-dir", str(tmp_path / as_of))
        assert plan.returncode == 0 and done.returncode == 0, done.stderr
        ran = _report(tmp_path / as_of)
        assert ran["status"] == "succeeded"
        return _report(tmp_path / f"p{as_of}"), ran

    for as_of, erased_notes, folded in (("2026-06-01", 2, 2), ("2026-09-01", 0, 0)):
        planned, ran = plan_then_run(as_of)
        assert ran["tables"]["notes"]["erased"] == planned["tables"]["notes"]["erased"] == erased_notes, as_of
        assert ran["aggregates"] == planned["aggregates"] == {"people_stats": {"folded": folded}}, as_of
    assert frame(store, "notes").empty                      # p-held's note went too, though its row is held
    assert set(frame(vault, "people").pid) == {"p-held"}    # the held row stays in the vault
    assert set(frame(store, "people").pid) == {"p-free"}    # p-old expired and was erased, folded once
    assert frame(store, "people_stats").row_count.sum() == 2

    _exec(store, "UPDATE legal_holds SET released_at = '2026-01-02 00:00:00'")
    planned, ran = plan_then_run("2026-09-02")              # the released row returns anonymized, folded once
    assert ran["vault"] == planned["vault"] == {"moved": 0, "released": 1}
    assert ran["aggregates"] == planned["aggregates"] == {"people_stats": {"folded": 1}}
    assert frame(store, "people_stats").row_count.sum() == 3 and frame(vault, "people").empty


def test_a_copy_left_in_the_vault_by_a_killed_move_is_not_released_and_applied_twice(seeded, tmp_path):
    """A move killed after its copy leaves the row in the store and a copy in the vault. If the hold is
    released before the next run, that copy must not be released (folded, recorded) while the store row,
    still due and no longer held, is applied (folded, recorded) too: each due account is folded once, even
    one the application changed meanwhile, and a dry run counts no release for them."""
    from pipelines.policy import load_policy

    store, vault = seeded
    plan = run(REFERENCE_POLICY, AS_OF, dry_run=True, report_dir=tmp_path / "r", store=store, vault=vault).report
    moving = [t for t in load_policy(REFERENCE_POLICY).table_order() if plan["tables"][t]["held"]]
    assert moving[-1] == "accounts" and plan["tables"]["accounts"]["held"] > 0
    args = ("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
            "--vault", vault, "--report-dir", str(tmp_path / "r"))
    killed = lethe(*args, env={"LETHE_FAULT": f"vault.after_copy:{len(moving)}"})  # the accounts chunk
    assert killed.returncode in (-9, 137), killed.stderr[-500:]
    copied = frame(vault, "accounts").user_id.tolist()
    assert copied and set(copied) <= set(frame(store, "accounts").user_id)  # copied, not yet deleted
    _exec(store, "UPDATE legal_holds SET released_at = :t",
          t=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    # the application changes one of those rows meanwhile: the store row still counts, not the copy
    _exec(store, "UPDATE accounts SET country = 'ZZ' WHERE user_id = :k", k=copied[0])
    moved_before = sum(len(frame(vault, t)) for t in moving[:-1])  # tables whose moves completed
    replan = run(REFERENCE_POLICY, AS_OF, dry_run=True, report_dir=tmp_path / "r", store=store, vault=vault).report
    assert replan["vault"]["released"] == moved_before  # not the copies of rows still in the store

    resumed = lethe(*args)

    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    report = json.loads(Path(resumed.stdout.split("report: ")[-1].strip()).read_text())
    assert report["vault"]["released"] == moved_before
    assert frame(vault, "accounts").empty
    stats = frame(store, "registration_stats")
    assert stats.row_count.sum() == plan["tables"]["accounts"]["due"]  # every due account folded exactly once
    ledger = frame(store, "lethe_ledger")
    accounts = ledger[ledger.table_name == "accounts"].groupby("action").row_count.sum().to_dict()
    assert accounts.get("anonymize", 0) + accounts.get("release_anonymize", 0) == plan["tables"]["accounts"]["due"]


def test_an_unreadable_release_time_keeps_the_hold_active_instead_of_a_traceback(sqlite_url, pseudonym_key,
                                                                                 tmp_path):
    """SQLite lets a DATETIME column hold any text. The typed read raised ValueError before the hold code could
    treat it as still active: a traceback and exit 1."""
    seed(sqlite_url, rows=2_000, seed=5, as_of=AS_OF)
    _exec(sqlite_url, "UPDATE legal_holds SET released_at = 'when the case closes' WHERE hold_id = 1")
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", sqlite_url,
                 "--vault", f"sqlite:///{tmp_path / 'v.db'}", "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (report,) = (tmp_path / "r").glob("run-*.json")
    assert "1" in {str(h["hold_id"]) for h in json.loads(report.read_text())["holds"]}  # still active


@pytest.mark.parametrize("released", [
    "4102444800",  # a Unix time (2100-01-01) in a DATETIME column: SQLite keeps it as an integer
    "2461099.5",  # a Julian day number, SQLite's own REAL form of a date
])
def test_a_numeric_release_time_keeps_the_hold_active_instead_of_a_traceback(sqlite_url, pseudonym_key, tmp_path,
                                                                            released):
    """A number in released_at reached `released.tzinfo`: AttributeError, a traceback and exit 1 on every run.
    Like unreadable text, it is no release time the run can trust, so the hold keeps protecting its rows."""
    _exec(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT)")
    _exec(sqlite_url, "INSERT INTO t VALUES (1, '2020-01-01'), (2, '2020-01-01')")
    _exec(sqlite_url, "CREATE TABLE legal_holds (hold_id TEXT PRIMARY KEY, subject_id TEXT, table_name TEXT, "
                      "record_key TEXT, case_ref TEXT, placed_at DATETIME, released_at DATETIME)")
    _exec(sqlite_url, f"INSERT INTO legal_holds VALUES ('H1', NULL, 't', '1', 'C', NULL, {released})")
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  t: {key: id, retain: {for: 1y, from: at}, when_expired: erase}\n")
    proc = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", sqlite_url,
                 "--vault", f"sqlite:///{tmp_path / 'v.db'}", "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert frame(sqlite_url, "t").id.tolist() == []  # 2 erased, 1 moved to the vault
    assert frame(f"sqlite:///{tmp_path / 'v.db'}", "t").id.tolist() == [1]


def test_sqlite_date_columns_holding_what_sqlalchemy_cannot_parse_move_and_return_as_stored(sqlite_url,
                                                                                             pseudonym_key, tmp_path):
    """SQLite keeps what it is given: a DATE column holding a timestamp, a DATETIME column holding a Unix time or
    ''. Reading such a row raised ValueError: moving a held row failed every run part-way (nothing else was
    processed), and so did the report's list of deleted subjects. The values now cross to the vault and back as
    stored."""
    _exec(sqlite_url, "CREATE TABLE people (pid INTEGER PRIMARY KEY, name TEXT, gone DATE, born DATETIME)")
    _exec(sqlite_url, "INSERT INTO people VALUES (1, 'Ann', '2026-01-01 10:00:00', 1577836800), "
                      "(2, 'Bob', '2026-01-01T10:00:00Z', ''), "
                      "(3, 'Cy', '2026-01-01 10:00:00', '1980-01-01 00:00:00'), "
                      "(4, 'Di', '2026-11-17 10:00:00', NULL)")  # inside its grace period: listed in the report
    _exec(sqlite_url, "CREATE TABLE legal_holds (hold_id TEXT PRIMARY KEY, subject_id TEXT, table_name TEXT, "
                      "record_key TEXT, case_ref TEXT, placed_at TEXT, released_at TEXT)")
    _exec(sqlite_url, "INSERT INTO legal_holds VALUES ('H1', '1', NULL, NULL, 'C', NULL, NULL), "
                      "('H2', '2', NULL, NULL, 'C', NULL, NULL)")
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}\n"
                      "subjects: {table: people, id: pid, deleted_at: gone, erase_after: 30d}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  people: {key: pid, subject: pid, when_subject_deleted: anonymize, "
                      "columns: {name: redact}}\n")
    vault = f"sqlite:///{tmp_path / 'v.db'}"
    args = ("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", sqlite_url, "--vault", vault,
            "--report-dir", str(tmp_path / "r"))
    stored = "SELECT pid, name, gone, born, typeof(born) FROM people ORDER BY pid"
    with sa.create_engine(sqlite_url).connect() as conn:
        before = conn.execute(sa.text(stored)).all()

    proc = lethe(*args)
    assert proc.returncode == 0, proc.stderr
    with sa.create_engine(vault).connect() as conn:
        assert conn.execute(sa.text(stored)).all() == before[:2]  # byte for byte, and type for type
    with sa.create_engine(sqlite_url).connect() as conn:
        assert conn.execute(sa.text(stored)).all() == [(3, None, *before[2][2:]), before[3]]
    (report,) = (tmp_path / "r").glob("run-*.json")
    assert [s["deleted_on"] for s in json.loads(report.read_text())["pending_subjects"]["subjects"]] == [
        "2026-01-01", "2026-01-01", "2026-11-17"]  # the two held, and the one in its grace period

    _exec(sqlite_url, "UPDATE legal_holds SET released_at = '2026-01-02 00:00:00'")
    proc = lethe(*args)
    assert proc.returncode == 0, proc.stderr
    with sa.create_engine(sqlite_url).connect() as conn:
        assert conn.execute(sa.text(stored)).all() == [(pid, None, *rest) for pid, _, *rest in before[:3]] + [before[3]]


@pytest.mark.parametrize("vault_on", ["postgresql", "sqlite"])
def test_postgresql_infinity_moves_to_the_vault_and_returns_as_infinity(pg, pseudonym_key, tmp_path, vault_on):
    """psycopg reads no `infinity` date or timestamp (DataError): a held row holding one ("valid until further
    notice") failed every run part-way at its move, and no other due row was processed. Infinity now crosses to
    either vault and back as it is."""
    store = pg.url(pg.create_database("store"))
    vault = pg.url(pg.create_database("vault")) if vault_on == "postgresql" else f"sqlite:///{tmp_path / 'v.db'}"
    _exec(store, "CREATE TABLE contracts (cid bigint PRIMARY KEY, holder text, signed timestamptz, valid_to date, "
                 "ended timestamp)")
    _exec(store, "CREATE TABLE legal_holds (hold_id text PRIMARY KEY, subject_id text, table_name text, "
                 "record_key text, case_ref text, placed_at timestamptz, released_at timestamptz)")
    _exec(store, "INSERT INTO contracts VALUES (1, 'Ann', '2020-01-01', 'infinity', '-infinity'), "
                 "(2, 'Bob', '2020-01-01', 'infinity', 'infinity'), (3, 'Cy', '-infinity', '2030-01-01', NULL)")
    _exec(store, "INSERT INTO legal_holds VALUES ('H1', NULL, 'contracts', '1', 'C', now(), NULL)")
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  contracts: {key: cid, retain: {for: 1y, from: signed}, when_expired: anonymize, "
                      "columns: {holder: redact}}\n")
    as_text = "SELECT cid, holder, CAST(valid_to AS TEXT), CAST(ended AS TEXT) FROM contracts ORDER BY cid"

    held = run(policy, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)

    assert held.status == "succeeded" and held.report["vault"]["moved"] == 1
    with sa.create_engine(vault).connect() as conn:
        assert conn.execute(sa.text(as_text)).all() == [(1, "Ann", "infinity", "-infinity")]
    with sa.create_engine(store).connect() as conn:
        assert conn.execute(sa.text(as_text)).all() == [(2, None, "infinity", "infinity"),
                                                        (3, None, "2030-01-01", None)]
    _exec(store, "UPDATE legal_holds SET released_at = now() - interval '1 day'")

    released = run(policy, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)

    assert released.status == "succeeded" and released.report["vault"]["released"] == 1
    with sa.create_engine(store).connect() as conn:
        assert conn.execute(sa.text(as_text)).first() == (1, None, "infinity", "-infinity")


def test_a_hold_released_at_minus_infinity_is_released_and_one_at_infinity_is_not(pg, pseudonym_key, tmp_path):
    """PostgreSQL's infinite timestamps in released_at: psycopg could not read them (DataError, a traceback on
    every run); '-infinity' is a release long past, 'infinity' a release that never comes."""
    store = pg.url(pg.create_database("store"))
    _exec(store, "CREATE TABLE t (id bigint PRIMARY KEY, at timestamptz)")
    _exec(store, "INSERT INTO t VALUES (1, '2020-01-01'), (2, '2020-01-01')")
    _exec(store, "CREATE TABLE legal_holds (hold_id text PRIMARY KEY, subject_id text, table_name text, "
                 "record_key text, case_ref text, placed_at timestamptz, released_at timestamptz)")
    _exec(store, "INSERT INTO legal_holds VALUES ('H1', NULL, 't', '1', 'C', now(), 'infinity'), "
                 "('H2', NULL, 't', '2', 'C', now(), '-infinity')")
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  t: {key: id, retain: {for: 1y, from: at}, when_expired: erase}\n")
    vault = f"sqlite:///{tmp_path / 'v.db'}"
    proc = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", store, "--vault", vault,
                 "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert frame(store, "t").id.tolist() == [] and frame(vault, "t").id.tolist() == [1]


@pytest.mark.parametrize("scope", ["NULL, NULL, NULL", "'s1', NULL, NULL"])
def test_an_active_hold_without_a_hold_id_is_refused_before_anything_is_written(sqlite_url, pseudonym_key,
                                                                                tmp_path, scope):
    """SQLite allows a NULL in a non-integer primary key. Without scope, sorting the invalid ids raised TypeError
    (exit 1); with a scope, every run failed part-way moving rows to the vault (TypeError, exit 3)."""
    _exec(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, sub TEXT, at TIMESTAMP)")
    _exec(sqlite_url, "INSERT INTO t VALUES (1, 's1', '2020-01-01 00:00:00')")
    _exec(sqlite_url, "CREATE TABLE legal_holds (hold_id VARCHAR(20) PRIMARY KEY, subject_id TEXT, table_name TEXT, "
                      "record_key TEXT, case_ref TEXT, placed_at TIMESTAMP, released_at TIMESTAMP)")
    _exec(sqlite_url, f"INSERT INTO legal_holds VALUES (NULL, {scope}, 'C', '2026-01-01', NULL), "
                      "('H2', NULL, NULL, NULL, 'C', '2026-01-01', NULL)")
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  t: {key: id, subject: sub, retain: {for: 1y, from: at}, when_expired: erase}\n")
    before = snapshot(sqlite_url)
    proc = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", sqlite_url,
                 "--vault", f"sqlite:///{tmp_path / 'v.db'}", "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    assert "legal hold(s) H2 have no scope" in proc.stderr
    assert "1 active legal hold(s) have hold_id NULL; give each an id" in proc.stderr
    assert snapshot(sqlite_url) == before


def _files_store(store: str, rows: int, size: int) -> None:
    """An `uploaded_files` table of `rows` binary files of `size` bytes, all due, all under a table hold."""
    engine = sa.create_engine(store)
    meta = sa.MetaData()
    files = sa.Table("uploaded_files", meta, sa.Column("file_id", sa.Integer, primary_key=True),
                     sa.Column("owner", sa.Integer), sa.Column("content", sa.LargeBinary),
                     sa.Column("uploaded", sa.DateTime))
    holds = sa.Table("legal_holds", meta, sa.Column("hold_id", sa.Integer, primary_key=True),
                     sa.Column("subject_id", sa.Text), sa.Column("table_name", sa.Text),
                     sa.Column("record_key", sa.Text), sa.Column("case_ref", sa.Text),
                     sa.Column("placed_at", sa.DateTime), sa.Column("released_at", sa.DateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        for i in range(rows):
            conn.execute(files.insert(), {"file_id": i, "owner": i, "content": bytes([i]) * size,
                                          "uploaded": dt.datetime(2024, 1, 1)})
        conn.execute(holds.insert(), {"hold_id": 1, "table_name": "uploaded_files", "case_ref": "C-1",
                                      "placed_at": dt.datetime(2026, 1, 1)})
    engine.dispose()


def _peak_bytes(work) -> tuple[object, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        return work(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_held_table_of_large_files_moves_checks_and_releases_in_batches_bounded_in_bytes(
        store_and_vault, pseudonym_key, tmp_path, monkeypatch):
    """A vault batch of 20,000 rows is a few megabytes of orders but gigabytes of uploaded files: the move read
    a whole chunk of full rows (checksummed, copied and read back), the release every unheld vault row at once
    and the checksum check 5,000 rows at a time. Each now holds a few rows' worth, whatever the table."""
    from pipelines import steps
    from pipelines import verify as verification
    from pipelines.context import build

    store, vault = store_and_vault
    rows, size = 40, 1_000_000
    _files_store(store, rows, size)
    policy = tmp_path / "files.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: k1}\n"
                      "legal_holds: {table: legal_holds}\ntables:\n  uploaded_files:\n    key: file_id\n"
                      "    retain: {for: 1y, from: uploaded}\n    when_expired: erase\n")
    monkeypatch.setattr("pipelines.widths.BATCH_BYTES", 2 * size)
    data = rows * size

    ctx = build(policy, AS_OF, store=store, vault=vault)
    moved, move_peak = _peak_bytes(lambda: steps.move_held_rows(ctx))
    checked, check_peak = _peak_bytes(lambda: verification.vault_checks(ctx))
    ctx.dispose()
    _exec(store, "UPDATE legal_holds SET released_at = :t",
          t=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    ctx = build(policy, AS_OF, store=store, vault=vault)
    released, release_peak = _peak_bytes(lambda: steps.release_vault_rows(ctx))
    ctx.dispose()

    assert moved == {"uploaded_files": rows}
    assert [(o.name, o.success) for o in checked] == [("vault.uploaded_files", True),
                                                      ("vault.uploaded_files.rows", True)]
    assert released["uploaded_files"]["erased"] == rows
    assert frame(store, "uploaded_files").empty and frame(vault, "uploaded_files").empty
    assert max(move_peak, check_peak, release_peak) < data / 2, (move_peak, check_peak, release_peak)
