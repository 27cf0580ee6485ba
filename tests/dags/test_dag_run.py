"""A DAG run does what `lethe run` does: `dag.test()` on the seeded reference dataset, checked to the row."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import textwrap

from tests.dags.conftest import BIN, DAGS, SEED_AS_OF, airflow_env, run, seed, write_policy

DAG_TEST = textwrap.dedent("""
    import datetime as dt, json, runpy, sys
    dag = runpy.run_path(sys.argv[1])["lethe_" + sys.argv[2]]
    run = dag.test(logical_date=dt.datetime.fromisoformat(sys.argv[3]).replace(tzinfo=dt.UTC),
                   run_conf=json.loads(sys.argv[4]))
    print(json.dumps({"state": str(run.state), "run_id": run.run_id}))
""")
TABLES = ["accounts", "access_logs", "orders", "marketing_profiles", "registration_stats"]


def dump(db_path) -> dict[str, list[tuple]]:
    """Every policy table and the aggregate, sorted, as Python values."""
    with sqlite3.connect(db_path) as conn:
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in TABLES}


def sqlite_conn(path) -> str:
    return json.dumps({"conn_type": "sqlite", "host": str(path)})


def test_dag_test_run_does_exactly_what_the_plan_said_and_what_lethe_run_does(airflow_home, tmp_path, lethe_key):
    store, twin, vault, twin_vault = (tmp_path / n for n in ("store.db", "twin.db", "vault.db", "twin_vault.db"))
    # The policy's own URLs point nowhere useful: the Airflow Connections must win.
    policy = write_policy(tmp_path / "policies", "ref", f"sqlite:///{tmp_path / 'unused.db'}",
                          f"sqlite:///{tmp_path / 'unused_vault.db'}")
    env = airflow_env(airflow_home, policy.parent, tmp_path / "reports", lethe_key,
                      AIRFLOW_CONN_LETHE_STORE=sqlite_conn(store), AIRFLOW_CONN_LETHE_VAULT=sqlite_conn(vault))
    seed(f"sqlite:///{store}", env)
    shutil.copy(store, twin)
    lethe = str(BIN / "lethe")
    run([lethe, "plan", "--policy", str(policy), "--as-of", SEED_AS_OF, "--store", f"sqlite:///{store}",
         "--vault", f"sqlite:///{vault}", "--report-dir", str(tmp_path / "plan")], env)
    (planned,) = [json.loads(p.read_text()) for p in (tmp_path / "plan").glob("*.json")]
    assert sum(t["due"] for t in planned["tables"].values()) > 0

    out = run([sys.executable, "-c", DAG_TEST, str(DAGS / "lethe_policies.py"), "ref", SEED_AS_OF,
               json.dumps({"partitions": 3})], env, timeout=400)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"] == "success", out.stdout[-3000:]

    reports = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*.json")]
    (rep,) = reports
    assert rep["status"] == "succeeded" and rep["as_of"] == SEED_AS_OF and rep["dry_run"] is False
    assert rep["run_id"].startswith("manual__")  # Airflow's run id, made file-safe
    for name, counts in planned["tables"].items():
        done = rep["tables"][name]
        assert (done["erased"], done["anonymized"], done["moved_to_vault"]) == (
            counts["erased"], counts["anonymized"], counts["moved_to_vault"]), name
    assert rep["aggregates"] == planned["aggregates"]
    assert all(e["success"] for e in rep["expectations"])
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM lethe_run_lock").fetchone() == (0,)  # released

    # The same as-of date through the CLI on an identical store: the same rows, the same counts.
    run([lethe, "run", "--policy", str(policy), "--as-of", SEED_AS_OF, "--store", f"sqlite:///{twin}",
         "--vault", f"sqlite:///{twin_vault}", "--report-dir", str(tmp_path / "cli")], env)
    (cli,) = [json.loads(p.read_text()) for p in (tmp_path / "cli").glob("*.json")]
    assert {n: {k: t[k] for k in ("erased", "anonymized", "moved_to_vault")} for n, t in cli["tables"].items()} == \
        {n: {k: t[k] for k in ("erased", "anonymized", "moved_to_vault")} for n, t in rep["tables"].items()}
    assert dump(store) == dump(twin)


def test_airflow_dags_test_fails_when_the_run_status_is_not_succeeded(airflow_home, tmp_path, lethe_key):
    store = tmp_path / "store.db"
    policy = write_policy(tmp_path / "policies", "tampered", f"sqlite:///{store}", f"sqlite:///{tmp_path / 'v.db'}")
    env = airflow_env(airflow_home, policy.parent, tmp_path / "reports", lethe_key)
    seed(f"sqlite:///{store}", env)
    run([str(BIN / "lethe"), "run", "--policy", str(policy), "--as-of", "2026-05-31",
         "--report-dir", str(tmp_path / "first")], env)
    with sqlite3.connect(store) as conn:  # someone edits the ledger: the chain no longer verifies
        conn.execute("UPDATE lethe_ledger SET row_count = row_count + 1 WHERE seq = 1")

    out = run([str(BIN / "airflow"), "dags", "test", "lethe_tampered", SEED_AS_OF], env, timeout=400, check=False)
    assert out.returncode != 0
    (rep,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*.json")]
    assert rep["status"] == "failed"
    failed = [e["name"] for e in rep["expectations"] if not e["success"]]
    # the edited entry may be a move to the vault: its count no longer matches the vault's rows either
    assert "ledger.chain" in failed and set(failed) <= {"ledger.chain", "vault.access_logs.rows"}, failed
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM lethe_run_lock").fetchone() == (0,)
    assert "lethe task failed: dag=lethe_tampered task=report as_of=2026-06-30 error=AirflowFailException" in \
        out.stdout + out.stderr


FAILING_POLICY = """
version: 1
store: "{store}"
pseudonymization: {{key: "airflow:lethe_pseudonym_key", key_id: k2026}}
tables:
  members:
    key: mid
    retain: {{for: 1y, from: last_login}}
    when_expired: anonymize
    columns: {{email: pseudonymize}}
"""


def test_a_task_failing_on_a_database_error_logs_the_step_and_table_never_the_row(airflow_home, tmp_path, lethe_key,
                                                                                   pg):
    """PostgreSQL quotes the failing row in its error; Airflow prints a failed task's exception in its log."""
    import sqlalchemy as sa

    store = pg.url(pg.create_database("dagfail"))
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE members (mid INTEGER PRIMARY KEY, email VARCHAR(80) CONSTRAINT "
                             "members_email_has_at CHECK (position('@' in email) > 0), full_name VARCHAR(80), "
                             "last_login TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO members VALUES (1, 'erin.secret@example.org', 'Erin Secretname', "
                             "'2020-01-01')"))
    engine.dispose()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "checked.yaml").write_text(FAILING_POLICY.format(store=store))
    env = airflow_env(airflow_home, policies, tmp_path / "reports", lethe_key)  # the DAG's default retries

    out = run([str(BIN / "airflow"), "dags", "test", "lethe_checked", SEED_AS_OF], env, timeout=400, check=False)

    logs = out.stdout + out.stderr
    assert out.returncode != 0
    failed = ('apply of table members failed: CheckViolation (SQLSTATE 23514, constraint "members_email_has_at", '
              'table "members")')
    assert failed in logs, logs[-3000:]
    # a constraint error recurs on every retry: the task fails at once instead of retrying
    assert logs.count(f"{failed}; raised at pipelines/apply.py:") == 1
    assert f"AirflowFailException: {failed}" in logs
    assert f"task=apply_tables.apply[0] as_of={SEED_AS_OF} error=AirflowFailException" in logs
    assert "erin.secret" not in logs and "Secretname" not in logs


def test_a_report_directory_that_cannot_be_made_fails_the_plan_task_before_any_change(airflow_home, tmp_path,
                                                                                      lethe_key):
    """As with `lethe run`: a run whose report cannot be written must not change the store first."""
    store = tmp_path / "store.db"
    policy = write_policy(tmp_path / "policies", "noreports", f"sqlite:///{store}", f"sqlite:///{tmp_path / 'v.db'}")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    env = airflow_env(airflow_home, policy.parent, blocker / "reports", lethe_key)
    seed(f"sqlite:///{store}", env)
    user_tables = ["accounts", "access_logs", "orders", "marketing_profiles"]
    with sqlite3.connect(store) as conn:
        before = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in user_tables}

    out = run([str(BIN / "airflow"), "dags", "test", "lethe_noreports", SEED_AS_OF], env, timeout=400, check=False)

    logs = out.stdout + out.stderr
    assert out.returncode != 0
    assert (f"AirflowFailException: cannot create the report directory {blocker / 'reports'} (Not a directory)"
            in logs), logs[-3000:]
    assert f"task=plan as_of={SEED_AS_OF} error=AirflowFailException" in logs
    with sqlite3.connect(store) as conn:
        assert {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in user_tables} == before
        assert conn.execute("SELECT count(*) FROM lethe_run_lock").fetchone() == (0,)  # the teardown ran
