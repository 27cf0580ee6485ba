"""Keys and subject ids of types the reference schema does not have: an id kept as text in one table and as a
number in another, keys with separators and quotes in them, numeric and negative keys."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from pipelines.runner import run

AS_OF = dt.date(2026, 6, 1)
GONE = dt.datetime(2025, 1, 1)


def _policy(tmp_path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n" + text)
    return path


def _keys(url: str, table: str, key: str) -> set:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text(f'SELECT "{key}" FROM "{table}"')).scalars())  # test-only, fixed names
    engine.dispose()
    return keys


@pytest.mark.parametrize(("id_type", "subject_type", "ids", "visits_left"), [
    # the account's id a number, an event's a string
    ("BIGINT", "TEXT", ["12", "-3", "9007199254740993"], {3}),
    # the other way round; the held subject's id is no number, so no visit can name it (visit 2 has none)
    ("TEXT", "BIGINT", ["12", "abc", "-3"], {2, 3}),
])
def test_a_subject_id_kept_as_text_in_one_table_and_as_a_number_in_another_is_found_in_both(
        store_and_vault, pseudonym_key, tmp_path, id_type, subject_type, ids, visits_left):
    """PostgreSQL has no `=` between text and bigint: the run failed part-way (UndefinedFunction) at its first
    table. Subject ids compare as text then, as legal holds compare them, also for a deleted subject whose own
    row a hold moved to the vault."""
    url, vault = store_and_vault
    gone, held, live = ids
    numeric_column = subject_type == "BIGINT"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE people (pid {id_type} PRIMARY KEY, gone TIMESTAMP)"))
        conn.execute(sa.text(f"CREATE TABLE visits (id INTEGER PRIMARY KEY, who {subject_type}, at TIMESTAMP)"))
        conn.execute(sa.text("CREATE TABLE legal_holds (hold_id TEXT PRIMARY KEY, subject_id TEXT, table_name TEXT,"
                             " record_key TEXT, case_ref TEXT, placed_at TIMESTAMP, released_at TIMESTAMP)"))
        people = [{"p": gone, "g": GONE}, {"p": held, "g": GONE}, {"p": live, "g": None}]
        if id_type == "BIGINT":
            people = [{**p, "p": int(p["p"])} for p in people]
        conn.execute(sa.text("INSERT INTO people VALUES (:p, :g)"), people)
        visits = [{"i": 1, "w": gone}, {"i": 2, "w": held}, {"i": 3, "w": live}]
        if numeric_column:
            visits = [{**v, "w": int(v["w"]) if v["w"].lstrip("-").isdigit() else None} for v in visits]
        conn.execute(sa.text("INSERT INTO visits VALUES (:i, :w, '2026-05-01')"), visits)
        # the deleted subject's own row is held: it moves to the vault, and its visits are still due
        conn.execute(sa.text("INSERT INTO legal_holds VALUES ('H1', :s, 'people', NULL, 'C-1', '2026-01-01', NULL)"),
                     {"s": held})
    engine.dispose()
    policy = _policy(tmp_path, """
subjects: {table: people, id: pid, deleted_at: gone, erase_after: 30d}
legal_holds: {table: legal_holds}
tables:
  people: {key: pid, subject: pid, when_subject_deleted: erase}
  visits: {key: id, subject: who, when_subject_deleted: erase}
""")

    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=url, vault=vault)

    assert result.status == "succeeded", result.report.get("error") or result.report["expectations"]
    survivors = {str(k) for k in _keys(url, "people", "pid")}
    assert survivors == {live}
    assert _keys(url, "visits", "id") == visits_left
    assert {str(k) for k in _keys(vault, "people", "pid")} == {held}


@pytest.mark.parametrize("vault_kind", ["postgresql", "sqlite"])
def test_a_hold_naming_a_uuid_in_capitals_or_braces_protects_its_row_in_the_store_and_in_the_vault(
        pg, pg_url, pseudonym_key, tmp_path, vault_kind):
    """PostgreSQL writes a UUID as text lower-case with hyphens; other systems show it in capitals or braces.
    Such a hold matched nothing: the order under hold was anonymized like any other. It is the same UUID: the
    row moves to the vault, stays there while the hold is active (a SQLite vault keeps it as text), and its
    provenance names the hold."""
    order, customer = "6F1C0E8A-4A0E-4D8E-9A59-6D2C0F6B1A01", "0B9D8C7E-1F2A-4B3C-8D4E-5F6A7B8C9D0E"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id UUID PRIMARY KEY, customer UUID, at TIMESTAMP, addr TEXT)"))
        conn.execute(sa.text("CREATE TABLE legal_holds (hold_id TEXT PRIMARY KEY, subject_id TEXT, table_name TEXT,"
                             " record_key TEXT, case_ref TEXT, placed_at TIMESTAMP, released_at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (:o, NULL, '2020-01-01', '1 Main St'), "
                             "(gen_random_uuid(), :c, '2020-01-01', '2 Main St'), "
                             "(gen_random_uuid(), NULL, '2020-01-01', '3 Main St')"), {"o": order, "c": customer})
        conn.execute(sa.text("INSERT INTO legal_holds VALUES ('H-row', NULL, 'orders', :o, 'C-1', '2026-01-01', NULL),"
                             " ('H-subject', :c, NULL, NULL, 'C-2', '2026-01-01', NULL)"),
                     {"o": order, "c": "{" + customer.lower() + "}"})
    engine.dispose()
    vault = pg.url(pg.create_database("vault")) if vault_kind == "postgresql" else f"sqlite:///{tmp_path / 'v.db'}"
    policy = _policy(tmp_path, """
legal_holds: {table: legal_holds}
tables:
  orders: {key: id, subject: customer, when_subject_deleted: keep, retain: {for: 1y, from: at},
           when_expired: anonymize, columns: {addr: redact}}
""")

    first = run(policy, AS_OF, report_dir=tmp_path / "r", store=pg_url, vault=vault)
    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=pg_url, vault=vault)

    assert first.status == again.status == "succeeded", first.report["expectations"]
    orders = first.report["tables"]["orders"]
    assert orders["moved_to_vault"] == 2 and orders["anonymized"] == 1
    assert again.report["vault"]["released"] == 0
    engine = sa.create_engine(vault)
    with engine.connect() as conn:
        copies = {str(k).upper(): h for k, h in conn.execute(sa.text("SELECT id, lethe_hold_ids FROM orders"))}
    engine.dispose()
    assert copies[order] == "H-row" and list(copies.values()).count("H-subject") == 1


@pytest.mark.parametrize("vault_kind", ["the other database", "the same database"])
def test_a_hold_on_a_numeric_key_names_the_number_in_any_spelling_and_keeps_its_row_in_the_vault(
        store_url, pg, pseudonym_key, tmp_path, vault_kind):
    """A NUMERIC(12,2) key is written -2.50 by PostgreSQL and -2.5 by SQLite (as the vault's copy of a PostgreSQL
    row): a hold on '-2.50' moved the row out of a PostgreSQL store, then matched no vault row and released it,
    erased, in the same run. A hold on '1' missed the key 1.00 on PostgreSQL. Numbers compare as numbers."""
    on_pg = store_url.startswith("postgresql")
    other = f"sqlite:///{tmp_path / 'v.db'}" if on_pg else pg.url(pg.create_database("vault"))
    same = pg.url(pg.create_database("vault")) if on_pg else f"sqlite:///{tmp_path / 'v.db'}"
    vault = other if vault_kind == "the other database" else same
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE entries (amount NUMERIC(12,2) PRIMARY KEY, memo TEXT, at TIMESTAMP)"))
        conn.execute(sa.text("CREATE TABLE legal_holds (hold_id TEXT PRIMARY KEY, subject_id TEXT, table_name TEXT,"
                             " record_key TEXT, case_ref TEXT, placed_at TIMESTAMP, released_at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO entries VALUES (-2.5, 'a', '2020-01-01'), (1, 'b', '2020-01-01'), "
                             "(7.25, 'c', '2020-01-01')"))
        conn.execute(sa.text("INSERT INTO legal_holds VALUES ('H-neg', NULL, 'entries', '-2.50', 'C-1', '2026-01-01',"
                             " NULL), ('H-one', NULL, 'entries', '1', 'C-2', '2026-01-01', NULL)"))
    engine.dispose()
    policy = _policy(tmp_path, """
legal_holds: {table: legal_holds}
tables:
  entries: {key: amount, retain: {for: 1y, from: at}, when_expired: anonymize, columns: {memo: redact}}
""")

    first = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url, vault=vault)
    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url, vault=vault)

    assert first.status == again.status == "succeeded", first.report["expectations"]
    assert first.report["vault"] == {"moved": 2, "released": 0} and again.report["vault"]["released"] == 0
    assert first.report["tables"]["entries"]["anonymized"] == 1
    engine = sa.create_engine(vault)
    with engine.connect() as conn:
        copies = {float(k): h for k, h in conn.execute(sa.text("SELECT amount, lethe_hold_ids FROM entries"))}
    engine.dispose()
    assert copies == {-2.5: "H-neg", 1.0: "H-one"}
    assert {float(k) for k in _keys(store_url, "entries", "amount")} == {7.25}
