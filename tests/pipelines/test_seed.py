"""The reference dataset: sizes, determinism, and the retention mix it promises relative to as_of."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines import reference_schema as schema
from pipelines.seed import plan_rows, seed

AS_OF = dt.date(2026, 3, 1)
D = dt.datetime(2026, 3, 1)
ROWS = 3_000


@pytest.fixture
def seeded(store_url) -> tuple[str, dict[str, int]]:
    return store_url, seed(store_url, rows=ROWS, seed=7, as_of=AS_OF)


def _rows(url: str, table: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        t = schema.metadata.tables[table]
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
    finally:
        engine.dispose()


def _value(url: str, table: str, column: str, key: int) -> object:
    """One typed value (DateTime comes back as datetime on SQLite too)."""
    t = schema.metadata.tables[table]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(t.c[column]).where(t.primary_key.columns[0] == key)).scalar_one()
    finally:
        engine.dispose()


def _scalar(url: str, sql: str, **params: dt.datetime | int) -> object:
    # Typed binds: SQLite then compares against the exact text SQLAlchemy stores for a DateTime.
    binds = [sa.bindparam(k, v, type_=sa.DateTime if isinstance(v, dt.datetime) else sa.Integer)
             for k, v in params.items()]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql).bindparams(*binds)).scalar_one()
    finally:
        engine.dispose()


def test_seed_creates_every_reference_table_with_the_planned_row_counts(seeded):
    url, counts = seeded
    assert counts == plan_rows(ROWS)
    assert set(counts) == set(schema.TABLE_NAMES)
    assert abs(sum(counts.values()) - ROWS) <= ROWS * 0.05
    assert counts["access_logs"] == max(counts.values())
    for table, n in counts.items():
        assert _scalar(url, f"SELECT COUNT(*) FROM {table}") == n


def test_legal_holds_table_has_the_spec_columns(seeded):
    url, _ = seeded
    columns = {c["name"]: c for c in sa.inspect(sa.create_engine(url)).get_columns("legal_holds")}
    assert list(columns) == ["hold_id", "subject_id", "table_name", "record_key", "case_ref", "placed_at",
                             "released_at"]
    assert [n for n, c in columns.items() if c["nullable"]] == ["subject_id", "table_name", "record_key",
                                                                 "released_at"]


def test_retention_columns_and_subjects_are_indexed(seeded):
    url, _ = seeded
    inspector = sa.inspect(sa.create_engine(url))
    indexed = {(t, c) for t in schema.TABLE_NAMES
               for i in inspector.get_indexes(t) for c in i["column_names"]}
    assert {("accounts", "deleted_at"), ("access_logs", "ts"), ("access_logs", "user_id"),
            ("orders", "created_at"), ("support_tickets", "closed_at"),
            ("marketing_profiles", "consent_withdrawn_at")} <= indexed


def test_same_seed_gives_identical_data_and_another_seed_different_data(store_url, tmp_path):
    other = f"sqlite:///{tmp_path / 'again.db'}"
    third = f"sqlite:///{tmp_path / 'third.db'}"
    seed(store_url, rows=1_000, seed=3, as_of=AS_OF)
    seed(other, rows=1_000, seed=3, as_of=AS_OF)
    seed(third, rows=1_000, seed=4, as_of=AS_OF)
    for table in schema.TABLE_NAMES:
        assert _rows(store_url, table) == _rows(other, table), table
    assert _rows(store_url, "accounts") != _rows(third, "accounts")
    assert _rows(store_url, "access_logs") != _rows(third, "access_logs")


def test_seeding_a_store_that_has_the_tables_is_refused_unless_replace(sqlite_url):
    seed(sqlite_url, rows=500, seed=1, as_of=AS_OF)
    with pytest.raises(ValueError, match=r"already has reference tables.*replace=True"):
        seed(sqlite_url, rows=500, seed=1, as_of=AS_OF)
    counts = seed(sqlite_url, rows=800, seed=1, as_of=AS_OF, replace=True)
    assert _scalar(sqlite_url, "SELECT COUNT(*) FROM accounts") == counts["accounts"]



def test_lethe_seed_creates_a_sqlite_store_in_a_new_directory_and_a_run_then_finds_it(tmp_path, pseudonym_key):
    """Seeding is how a store comes to exist, so it creates the file's directory; other commands do not."""
    from tests.support.stores import REFERENCE_POLICY, lethe

    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'store.db'}"
    seeded = lethe("seed", "--store", url, "--rows", "300")
    assert seeded.returncode == 0, seeded.stderr
    assert _scalar(url, "SELECT COUNT(*) FROM accounts") > 0
    checked = lethe("check", "--policy", str(REFERENCE_POLICY), "--store", url)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stderr

def test_accounts_are_due_inside_grace_and_live_relative_to_as_of(seeded):
    url, counts = seeded
    grace = D - dt.timedelta(days=30)
    due = _scalar(url, "SELECT COUNT(*) FROM accounts WHERE deleted_at <= :c", c=grace)
    in_grace = _scalar(url, "SELECT COUNT(*) FROM accounts WHERE deleted_at > :c AND deleted_at <= :d",
                       c=grace, d=D)
    live = _scalar(url, "SELECT COUNT(*) FROM accounts WHERE deleted_at IS NULL")
    n = counts["accounts"]
    assert due == round(0.10 * n)
    assert in_grace == round(0.03 * n)
    assert live == n - due - in_grace


def test_time_based_tables_have_rows_on_both_sides_of_their_cutoffs(seeded):
    url, counts = seeded
    old_logs = _scalar(url, "SELECT COUNT(*) FROM access_logs WHERE ts <= :c", c=D - dt.timedelta(days=90))
    assert 0.4 < old_logs / counts["access_logs"] < 0.65  # about half of ~200 days is older than 90
    assert _scalar(url, "SELECT COUNT(*) FROM access_logs WHERE ts > :d", d=D) > 0  # after as_of: not due
    assert _scalar(url, "SELECT COUNT(*) FROM support_tickets WHERE closed_at IS NULL") > 0
    three_years, seven_years = dt.datetime(2023, 3, 1), dt.datetime(2019, 3, 1)
    assert _scalar(url, "SELECT COUNT(*) FROM support_tickets WHERE closed_at <= :c", c=three_years) > 0
    assert _scalar(url, "SELECT COUNT(*) FROM support_tickets WHERE closed_at > :c", c=three_years) > 0
    assert _scalar(url, "SELECT COUNT(*) FROM orders WHERE created_at <= :c", c=seven_years) > 0
    assert _scalar(url, "SELECT COUNT(*) FROM orders WHERE created_at > :c", c=seven_years) > 0
    withdrawn = _scalar(url, "SELECT COUNT(*) FROM marketing_profiles WHERE consent_withdrawn_at IS NOT NULL")
    assert 0.2 < withdrawn / counts["marketing_profiles"] < 0.4
    assert _scalar(url, "SELECT COUNT(*) FROM marketing_profiles WHERE consent_withdrawn_at > :d", d=D) > 0
    assert _scalar(url, "SELECT COUNT(*) FROM newsletter_subscriptions WHERE unsubscribed_at <= :d", d=D) > 0


def test_holds_of_every_scope_are_present_and_point_at_due_rows(seeded):
    url, _ = seeded
    holds = {h[0]: h for h in _rows(url, "legal_holds")}
    _, subject, table, key, case_ref, placed_at, released_at = holds[1]
    assert (table, key, released_at) == (None, None, None) and case_ref
    deleted = _value(url, "accounts", "deleted_at", subject)
    assert deleted <= D - dt.timedelta(days=30)  # a subject hold on an account due for erasure

    assert holds[2][1:4] == (None, "orders", "1") and holds[2][6] is None
    assert _value(url, "orders", "created_at", 1) <= dt.datetime(2019, 3, 1)

    _, subject, table, key, *_, released_at = holds[3]
    assert (table, key, released_at) == ("access_logs", None, None)
    assert _scalar(url, "SELECT COUNT(*) FROM access_logs WHERE user_id = :u AND ts <= :c",
                   u=subject, c=D - dt.timedelta(days=90)) > 0

    _, subject, table, key, _, placed_at, released_at = holds[4]
    assert (table, key) == (None, None)
    assert placed_at < released_at < dt.datetime.now()  # released: no longer protects anything
    assert _value(url, "accounts", "deleted_at", subject) <= D - dt.timedelta(30)

    assert holds[5][1:4] == (None, "support_tickets", "1")
    assert holds[5][5] == D and holds[5][6] is None  # placed on the as-of date itself
    assert len(holds) == 5


def test_values_look_like_a_real_platforms(seeded):
    url, _ = seeded
    accounts = _rows(url, "accounts")
    assert all("@" in a[1] and " " in a[2] for a in accounts)
    assert all(a[4].startswith("$2b$12$") and len(a[4]) == 60 for a in accounts)
    assert all(len(a[5]) == 2 and a[5].isupper() for a in accounts)  # ISO 3166-1 alpha-2
    assert {a[7] for a in accounts} == {"web", "app", "partner", "api"}
    ips = [ipaddress.ip_address(r[2]) for r in _rows(url, "access_logs")]
    v6 = sum(ip.version == 6 for ip in ips) / len(ips)
    assert 0.15 < v6 < 0.25
    assert {ipaddress.ip_address(a[6]).version for a in accounts} == {4, 6}
    orders = _rows(url, "orders")
    assert all(o[5].startswith("tok_") for o in orders)
    assert all(o[6] is None or (len(o[6]) == 4 and o[6].isdigit()) for o in orders)
    assert all(o[7] > 0 for o in orders)


def test_reference_policy_covers_every_seeded_table_with_its_real_columns():
    from pipelines.policy import load_policy

    policy = load_policy("policies/cloud3d.yaml")
    assert set(policy.tables) == set(schema.TABLE_NAMES) - {"legal_holds"}
    assert policy.subjects.table == "accounts" and policy.legal_holds.table == "legal_holds"
    for name, rule in policy.tables.items():
        table = schema.metadata.tables[name]
        assert [c.name for c in table.primary_key.columns] == [rule.key], name
        named = set(rule.columns) | {rule.subject} | ({rule.retain.from_column} if rule.retain else set())
        assert named - {None} <= set(table.c.keys()), name
        assert rule.key not in rule.columns, name  # keys are never rewritten
        for column, spec in rule.columns.items():
            if not table.c[column].nullable:
                assert spec != "redact", f"{name}.{column} is NOT NULL: redact needs `with`"
    stats = policy.aggregates["registration_stats"]
    assert set(stats.dimensions) == {"day", "country", "email_domain", "ip_prefix", "signup_channel"}
    assert stats.min_group_size == 5


def test_lethe_demo_runs_again_and_again_from_a_fresh_embedded_store(tmp_path):
    """`make demo` twice: the second demo re-seeds the embedded store, and must not find the first demo's
    markers (which would take the new rows, same keys, for ones already anonymized and fail verification)."""
    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "policies", tmp_path / "policies")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    lethe = Path(sys.executable).with_name("lethe")
    for attempt in (1, 2):
        proc = subprocess.run([str(lethe), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"demo {attempt}: {proc.stderr[-2000:]}"
        assert "succeeded" in proc.stdout
    assert len(list((tmp_path / "reports").glob("*.json"))) == 2
