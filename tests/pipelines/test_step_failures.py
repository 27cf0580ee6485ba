"""A step that fails on a database error names the step and the table, and no value from the data.

The store's own constraint rejects what the policy asks for: a CHECK that every email has an @, which a
pseudonym has not. PostgreSQL quotes the whole failing row in its error ("Failing row contains (...)").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback

import pytest
import sqlalchemy as sa

from pipelines import lock, steps
from pipelines.context import build
from pipelines.errors import StepFailedError
from tests.support.stores import frame, lethe

AS_OF = dt.date(2026, 6, 30)
SECRETS = ("carol.private@example.org", "Carol Privatename", "dave.hidden@example.org", "Dave Hiddenname")
POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}
tables:
  members:
    key: mid
    retain: {for: 1y, from: last_login}
    when_expired: anonymize
    columns: {email: pseudonymize}
"""


@pytest.fixture
def checked_store(store_url, pseudonym_key, tmp_path):
    engine = sa.create_engine(store_url)
    has_at = "instr(email, '@') > 0" if engine.dialect.name == "sqlite" else "position('@' in email) > 0"
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE members (mid INTEGER PRIMARY KEY, email VARCHAR(80) "
                             f"CONSTRAINT members_email_has_at CHECK ({has_at}), "
                             "full_name VARCHAR(80), last_login TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO members VALUES (1, :e1, :n1, '2020-01-01 00:00:00'), "
                             "(2, :e2, :n2, '2026-06-01 00:00:00')"),
                     {"e1": SECRETS[0], "n1": SECRETS[1], "e2": SECRETS[2], "n2": SECRETS[3]})
    engine.dispose()
    policy = tmp_path / "checked.yaml"
    policy.write_text(POLICY)
    return store_url, policy


def _no_secret_in(text: str) -> None:
    leaked = [s for s in SECRETS if s in text or s.split("@")[0] in text]
    assert not leaked, f"personal values in the output: {leaked}"


def test_the_cli_names_the_step_and_table_and_leaks_nothing(checked_store, tmp_path, caplog):
    url, policy = checked_store
    before = frame(url, "members")
    reports = tmp_path / "r"

    proc = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", url,
                 "--report-dir", str(reports))

    assert proc.returncode == 3, proc.stderr
    assert "failed part-way: apply of table members failed: " in proc.stderr
    assert "IntegrityError" in proc.stderr or "CheckViolation" in proc.stderr
    assert "members_email_has_at" in proc.stderr if url.startswith("postgresql") else True
    (report,) = reports.glob("*.json")
    text = report.read_text()
    assert '"status": "error"' in text and "apply of table members failed" in text
    for output in (proc.stdout, proc.stderr, text):
        _no_secret_in(output)
    assert frame(url, "members").equals(before)  # the chunk rolled back: nothing changed, nothing lost


def test_the_error_a_task_raises_carries_no_value_in_its_traceback(checked_store, caplog):
    """What Airflow prints for a failed task: the exception with its traceback and chained causes."""
    url, policy = checked_store
    ctx = build(policy, AS_OF, store=url)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(StepFailedError) as failed:
            steps.apply(ctx, "members")
    finally:
        ctx.dispose()
    error = failed.value
    assert (error.step, error.table) == ("apply", "members")
    assert error.__cause__ is None and error.__suppress_context__
    printed = "".join(traceback.format_exception(error))
    assert "apply of table members failed" in printed
    if url.startswith("postgresql"):
        assert 'SQLSTATE 23514' in printed and 'constraint "members_email_has_at"' in printed
    else:
        assert "SQLITE_CONSTRAINT_CHECK" in printed
    _no_secret_in(printed)
    _no_secret_in(caplog.text)
    assert "raised at pipelines/" in caplog.text and "apply.py:" in caplog.text  # code locations, path:line


def test_only_errors_a_retry_may_clear_count_as_transient(tmp_path):
    """The DAG retries a task on a transient error and fails it at once otherwise (a constraint recurs)."""
    import sqlite3

    import psycopg

    from pipelines.errors import is_transient

    assert is_transient(psycopg.errors.DeadlockDetected())
    assert is_transient(psycopg.errors.SerializationFailure())
    assert is_transient(psycopg.errors.AdminShutdown())
    assert is_transient(psycopg.errors.LockNotAvailable())
    assert not is_transient(psycopg.errors.CheckViolation())
    assert not is_transient(psycopg.errors.UniqueViolation())
    assert not is_transient(psycopg.errors.InvalidTextRepresentation())

    path = tmp_path / "busy.db"
    first, second = sqlite3.connect(path, timeout=0), sqlite3.connect(path, timeout=0)
    first.execute("CREATE TABLE t (a INTEGER CHECK (a > 0))")
    first.commit()
    first.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as busy:
        second.execute("BEGIN IMMEDIATE")
    first.rollback()
    with pytest.raises(sqlite3.IntegrityError) as check:
        first.execute("INSERT INTO t VALUES (0)")
    first.close()
    second.close()
    assert is_transient(busy.value) and not is_transient(check.value)
    assert is_transient(RuntimeError("no driver code: the retry policy decides"))


def test_a_role_that_cannot_create_lethes_tables_gets_the_step_named_and_the_store_back(pg, pseudonym_key,
                                                                                      tmp_path):
    """Before the first change a run creates its lock, marker, ledger and tombstone tables. A production role
    without CREATE on the schema fails there: the message names the step (never a traceback), the error
    report is written either way, and a failure after the lock was taken leaves the store free for the next
    run."""
    import secrets

    db = pg.create_database("store")
    role, password = f"limited_{secrets.token_hex(4)}", secrets.token_hex(8)
    pg.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    owner = sa.create_engine(pg.url(db))
    with owner.begin() as conn:
        conn.execute(sa.text("CREATE TABLE members (mid INTEGER PRIMARY KEY, email VARCHAR(80), "
                             "full_name VARCHAR(80), last_login TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO members VALUES (1, :e, :n, '2020-01-01 00:00:00')"),
                     {"e": SECRETS[0], "n": SECRETS[1]})
        conn.execute(sa.text(f"GRANT SELECT, UPDATE, DELETE ON members TO {role}"))
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    url = pg.url(db, user=role, password=password)
    run = ["run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", url]

    no_lock = lethe(*run, "--report-dir", str(tmp_path / "r1"))

    assert no_lock.returncode == 3, no_lock.stderr
    assert "failed part-way: lock failed: InsufficientPrivilege (SQLSTATE 42501" in no_lock.stderr
    assert "Traceback" not in no_lock.stderr
    (lock_report,) = (tmp_path / "r1").glob("*.json")
    assert json.loads(lock_report.read_text())["status"] == "error"
    assert "lock failed: InsufficientPrivilege" in json.loads(lock_report.read_text())["error"]

    with owner.begin() as conn:  # the lock table exists (an earlier run by the owner), the others do not
        lock.LOCK.create(conn)
        conn.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON lethe_run_lock TO {role}"))

    no_tables = lethe(*run, "--report-dir", str(tmp_path / "r2"))

    assert no_tables.returncode == 3, no_tables.stderr
    assert "failed part-way: prepare failed: InsufficientPrivilege (SQLSTATE 42501" in no_tables.stderr
    (report,) = (tmp_path / "r2").glob("*.json")
    assert '"status": "error"' in report.read_text()
    for output in (no_lock.stderr, no_tables.stderr, lock_report.read_text(), report.read_text()):
        _no_secret_in(output)
    with owner.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lethe_run_lock")).scalar() == 0  # released
        assert conn.execute(sa.text("SELECT email FROM members")).scalar() == SECRETS[0]  # untouched
    owner.dispose()


ARRIVALS_FIRST = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}
tables:
  arrivals:
    key: vid
    retain: {for: 30d, from: at}
    when_expired: erase
  members:
    key: mid
    retain: {for: 1y, from: last_login}
    when_expired: anonymize
    columns: {email: pseudonymize}
"""


def test_the_report_of_a_run_that_failed_part_way_counts_the_rows_it_changed_before(checked_store, tmp_path):
    """arrivals are erased and committed before members fail (tables go in name order): the error report said
    0 rows for every table, while the ledger recorded the erasure."""
    url, _ = checked_store
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE arrivals (vid INTEGER PRIMARY KEY, at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO arrivals VALUES (1, '2026-01-01'), (2, '2026-02-01'), (3, '2026-06-29')"))
    engine.dispose()
    policy = tmp_path / "arrivals_first.yaml"
    policy.write_text(ARRIVALS_FIRST)

    proc = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", url,
                 "--report-dir", str(tmp_path / "r"))

    assert proc.returncode == 3, proc.stderr
    assert frame(url, "arrivals").vid.tolist() == [3]  # the oracle: two visits erased before members failed
    (path,) = (tmp_path / "r").glob("*.json")
    rep = json.loads(path.read_text())
    assert rep["status"] == "error" and "apply of table members failed" in rep["error"]
    assert rep["tables"]["arrivals"]["erased"] == 2 and rep["tables"]["arrivals"]["due"] == 2
    assert rep["tables"]["members"]["anonymized"] == 0 and rep["tables"]["members"]["due"] == 1
    assert rep["ledger"]["entries"] == 1
    _no_secret_in(path.read_text())


def test_a_run_whose_store_cannot_be_read_after_its_failure_still_writes_its_error_report(checked_store, tmp_path,
                                                                                        monkeypatch):
    """The store went away mid-run: counting what the run changed fails too. That was a traceback (exit 1)
    and no report; now the report says the counts are in the ledger."""
    from pipelines import ledger, runner
    from pipelines.errors import RunFailedError

    url, policy = checked_store

    def unreachable(*_args, **_kwargs):
        raise sa.exc.OperationalError("SELECT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(ledger, "run_totals", unreachable)
    monkeypatch.setattr(steps, "ledger_state", unreachable)
    with pytest.raises(RunFailedError, match="apply of table members failed"):
        runner.run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    (path,) = (tmp_path / "r").glob("*.json")
    rep = json.loads(path.read_text())
    assert rep["status"] == "error" and "has no counts" in rep["error"] and rep["tables"] == {}
    # the SPEC's fields are there, unknown rather than zero
    assert rep["vault"] == {"moved": None, "released": None} and rep["ledger"] == {"entries": None, "head": None}


def test_a_run_that_cannot_release_the_lock_of_a_store_gone_away_still_fails_as_part_way(checked_store, tmp_path,
                                                                                       monkeypatch, caplog):
    """The release in the run's last step raised its OperationalError over the run's own failure: a traceback
    with exit 1 (an expectation failed) instead of exit 3 (failed part-way)."""
    from pipelines import runner
    from pipelines.errors import RunFailedError

    url, policy = checked_store

    def gone(*_args, **_kwargs):
        raise sa.exc.OperationalError("DELETE", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(lock, "release", gone)
    with pytest.raises(RunFailedError, match="apply of table members failed"):
        runner.run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert "could not release the store lock" in caplog.text
