"""Names the reference schema does not have: long ones near PostgreSQL's 63-byte limit, non-ASCII ones, and
the names Lethe derives from them for its own objects."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.support.stores import lethe, snapshot

AS_OF = "2026-06-01"


def _accounts(url: str) -> None:
    """Three accounts deleted long ago (two in DE, one in FR) and one live one."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, country TEXT, deleted TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO accounts VALUES (1, 'DE', :d), (2, 'DE', :d), (3, 'FR', :d), "
                             "(4, 'FR', NULL)"), {"d": dt.datetime(2025, 1, 1)})
    engine.dispose()


def _policy(tmp_path, aggregate: str, dimension: str = "country"):
    path = tmp_path / "p.yaml"
    path.write_text(f"""version: 1
pseudonymization: {{key: env:LETHE_PSEUDONYM_KEY, key_id: w1}}
subjects: {{table: accounts, id: id, deleted_at: deleted, erase_after: 30d}}
tables:
  accounts: {{key: id, subject: id, when_subject_deleted: erase}}
aggregates:
  "{aggregate}":
    from: accounts
    dimensions: {{"{dimension}": {{column: country}}}}
    min_group_size: 1
""")
    return path


def _run(policy, url: str, tmp_path, as_of: str = AS_OF):
    return lethe("run", "--policy", str(policy), "--as-of", as_of, "--store", url, "--report-dir", str(tmp_path / "r"))


@pytest.mark.parametrize("name", [
    "a" * 50 + "_registration",     # 63 ASCII characters: its unique key cut to 63 was the table's own name
    "stäts_" + "ü" * 28,            # 63 bytes in 34 characters: PostgreSQL counts bytes, and cut the key the same
])
def test_an_aggregate_with_a_name_of_63_bytes_is_created_and_folded_into_run_after_run(store_url, pseudonym_key,
                                                                                      tmp_path, name):
    """PostgreSQL keeps 63 bytes of a name. The aggregate's unique key was named `<name>_dims_uq` cut to 63
    characters, here the table's own name: every run failed part-way (DuplicateTable, exit 3)."""
    assert len(name.encode()) == 63
    _accounts(store_url)
    policy = _policy(tmp_path, name)

    first = _run(policy, store_url, tmp_path)
    later = _run(policy, store_url, tmp_path, "2026-07-01")

    assert first.returncode == 0, first.stderr
    assert later.returncode == 0, later.stderr
    counts = snapshot(store_url, [name])[name]
    assert counts == [("DE", 2), ("FR", 1)]


@pytest.mark.parametrize(("aggregate", "dimension", "path"), [
    # 64 characters: SQLAlchemy refused to create the table part-way (IdentifierError, exit 3)
    ("a" * 51 + "_registration", "country", "aggregates." + "a" * 51 + "_registration"),
    # 67 bytes in 36 characters: PostgreSQL cut the table's name short, and its key's to the same (exit 3)
    ("stäts_" + "ü" * 30, "country", "aggregates.stäts_" + "ü" * 30),
    # a column PostgreSQL cut short: the first run passed, every later one was refused (not the aggregate's
    # columns)
    ("stats", "land_" + "ü" * 30, "aggregates.stats.dimensions.land_" + "ü" * 30),
])
def test_aggregate_and_dimension_names_postgresql_would_cut_short_are_refused_up_front(pg_url, pseudonym_key,
                                                                                      tmp_path, aggregate,
                                                                                      dimension, path):
    """A name longer than PostgreSQL's 63 bytes is bad input (exit 2) naming it, before anything is written."""
    _accounts(pg_url)
    policy = _policy(tmp_path, aggregate, dimension)
    before = snapshot(pg_url)

    result = _run(policy, pg_url, tmp_path)
    check = lethe("check", "--policy", str(policy), "--store", pg_url)

    for proc in (result, check):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{path}: the name is " in proc.stderr and "keeps 63 bytes of a table or column name" in proc.stderr
    assert snapshot(pg_url) == before


def test_tables_in_a_schema_of_their_own_named_by_the_urls_search_path(pg_url, pseudonym_key, tmp_path):
    """A store whose tables live in schema `sales`, reached with `?options=-csearch_path=sales`: pgcrypto sits in
    `public`, off that path, and every chunk that pseudonymized in SQL failed (UndefinedFunction, exit 3).
    Lethe anonymizes in pandas then, with the same tokens; its own tables go to `sales` with the data."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA sales"))
        conn.execute(sa.text("CREATE TABLE sales.customers (id BIGINT PRIMARY KEY, email TEXT, gone TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO sales.customers VALUES (1, 'a@example.org', '2025-01-01'), "
                             "(2, 'b@example.org', NULL)"))
    url = pg_url + "?options=-csearch_path%3Dsales"
    policy = tmp_path / "p.yaml"
    policy.write_text("""version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}
subjects: {table: customers, id: id, deleted_at: gone, erase_after: 30d}
tables:
  customers: {key: id, subject: id, when_subject_deleted: anonymize, columns: {email: pseudonymize}}
""")

    result = _run(policy, url, tmp_path)

    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        emails = dict(conn.execute(sa.text("SELECT id, email FROM sales.customers")).all())
        lethes = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename = 'lethe_anonymized' "
                                      "AND schemaname = 'sales'")).scalar()
    engine.dispose()
    assert emails[1].startswith("lt1.w1.") and emails[2] == "b@example.org" and lethes == 1


def test_a_colon_before_a_name_in_a_column_or_a_held_key_reaches_verification_as_written(store_and_vault,
                                                                                         pseudonym_key, tmp_path):
    """Great Expectations runs each check's SQL as SQLAlchemy text(), which takes `:name` for a parameter, also
    inside a quoted name or string: a column named ":memo" became NULL, its form check could not be evaluated
    and every run failed (exit 1). A held key such as 'ref :7' is in the SQL of the retention and hold checks."""
    url, vault = store_and_vault
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE notes (ref TEXT PRIMARY KEY, ":memo" TEXT, at TIMESTAMP)')
        conn.exec_driver_sql("CREATE TABLE legal_holds (hold_id TEXT PRIMARY KEY, subject_id TEXT, table_name TEXT,"
                             " record_key TEXT, case_ref TEXT, placed_at TIMESTAMP, released_at TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO notes VALUES ('ref :7', 'a', '2020-01-01'), ('n2', 'b', '2020-01-01'), "
                             "('n3', 'c', '2026-05-01')")
        conn.exec_driver_sql("INSERT INTO legal_holds VALUES ('H1', NULL, 'notes', 'ref :7', 'C-1', '2026-01-01', "
                             "NULL)")
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("""version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}
legal_holds: {table: legal_holds}
tables:
  notes: {key: ref, retain: {for: 1y, from: at}, when_expired: anonymize, columns: {":memo": {redact: {with: "-"}}}}
""")

    result = lethe("run", "--policy", str(policy), "--as-of", AS_OF, "--store", url, "--vault", vault,
                   "--report-dir", str(tmp_path / "r"))

    assert result.returncode == 0, result.stdout + result.stderr
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        memos = dict(conn.exec_driver_sql('SELECT ref, ":memo" FROM notes').all())
    engine.dispose()
    assert memos == {"n2": "-", "n3": "c"}


def test_a_table_named_with_its_schema_is_refused_saying_how_to_reach_that_schema(pg_url, pseudonym_key, tmp_path):
    """`sales.orders` in a policy was refused as "no such table; tables are (none)", which says nothing of schemas:
    the message now says that Lethe reads the current schema's tables and how to make `sales` the current one."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA sales"))
        conn.execute(sa.text("CREATE TABLE sales.orders (id BIGINT PRIMARY KEY, at TIMESTAMP)"))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "tables:\n  sales.orders: {key: id, retain: {for: 1y, from: at}, when_expired: erase}\n")

    result = _run(policy, pg_url, tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "tables.sales.orders: no such table in the store" in result.stderr
    assert "current schema (public)" in result.stderr and "name the table orders" in result.stderr
    assert "options=-csearch_path%3Dsales" in result.stderr
