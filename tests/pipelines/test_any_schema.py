"""Schemas nobody here designed: text and UUID keys, quoted identifiers, reserved words, zones, text dates."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.runner import run
from tests.support.stores import lethe, snapshot

POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}
subjects: {table: "Customer Accounts", id: "Customer ID", deleted_at: "Deleted At", erase_after: 7d}
tables:
  "Customer Accounts":
    key: "Customer ID"
    subject: "Customer ID"
    when_subject_deleted: anonymize
    columns:
      "E-Mail": pseudonymize
      select: {mask: {keep_first: 1}}
  order:
    key: id
    subject: customer
    retain: {for: 1y, from: from}
    when_expired: anonymize
    when_subject_deleted: anonymize
    columns:
      "Ship To": {redact: {with: "[redacted]"}}
      note: pseudonymize
  audit:
    key: ref
    retain: {for: 30d, from: at}
    when_expired: erase
"""
AS_OF = dt.date(2026, 11, 22)
GONE = uuid.UUID("6f1c0e8a-4a0e-4d8e-9a59-6d2c0f6b1a01")
LIVE = uuid.UUID("0b9d8c7e-1f2a-4b3c-8d4e-5f6a7b8c9d0e")


def _create(url: str) -> None:
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    accounts = sa.Table("Customer Accounts", meta, sa.Column("Customer ID", sa.Uuid, primary_key=True),
                        sa.Column("E-Mail", sa.String), sa.Column("select", sa.String),
                        sa.Column("Deleted At", sa.DateTime(timezone=True)))
    order = sa.Table("order", meta, sa.Column("id", sa.String(20), primary_key=True),
                     sa.Column("customer", sa.Uuid), sa.Column("from", sa.DateTime(timezone=True)),
                     sa.Column("Ship To", sa.String, nullable=False), sa.Column("note", sa.String))
    audit = sa.Table("audit", meta, sa.Column("ref", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("at", sa.DateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(accounts.insert(), [
            {"Customer ID": GONE, "E-Mail": "gone@example.org", "select": "secret",
             "Deleted At": dt.datetime(2026, 11, 1, tzinfo=dt.UTC)},
            {"Customer ID": LIVE, "E-Mail": "live@example.org", "select": "visible", "Deleted At": None},
        ])
        # zoned timestamps as text, the way an application would write them: on SQLite they stay text
        # with their offset (SQLAlchemy's DateTime would drop the zone), on PostgreSQL timestamptz parses them
        conn.execute(order.insert(), [
            # 2025-11-22 01:30+02:00 is 2025-11-21 23:30 UTC: before the 1-year cutoff, so due
            {"id": "A-1", "customer": LIVE, "Ship To": "1 Main St", "note": "call first"},
            {"id": "A-2", "customer": LIVE, "Ship To": "2 Main St", "note": "fragile"},
            {"id": "B-1", "customer": GONE, "Ship To": "3 Side St", "note": "gift"},
        ])
        for key, stamp in (("A-1", "2025-11-22 01:30:00+02:00"), ("A-2", "2025-11-22 03:00:00+02:00"),
                           ("B-1", "2026-10-01 00:00:00+00:00")):
            conn.execute(sa.text('UPDATE "order" SET "from" = :s WHERE id = :k'), {"s": stamp, "k": key})
        conn.execute(audit.insert(), [{"ref": 1, "at": dt.datetime(2026, 1, 1)}, {"ref": 2, "at": None}])
    engine.dispose()


@pytest.fixture
def store(store_url, pseudonym_key, tmp_path):
    _create(store_url)
    policy = tmp_path / "weird.yaml"
    policy.write_text(POLICY)
    return store_url, policy


def _rows(url: str, table: str, key: str) -> dict:
    engine = sa.create_engine(url)
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = {r._mapping[key]: dict(r._mapping) for r in conn.execute(sa.select(t))}
    engine.dispose()
    return rows


def test_quoted_identifiers_uuid_and_text_keys_and_zoned_timestamps(store, tmp_path):
    url, policy = store
    check = lethe("check", "--policy", str(policy), "--store", url)
    assert check.returncode == 0, check.stderr

    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)

    assert result.status == "succeeded", [e for e in result.report["expectations"] if not e["success"]]
    orders = _rows(url, "order", "id")
    assert orders["A-1"]["Ship To"] == "[redacted]" and orders["A-1"]["note"].startswith("lt1.w1.")
    assert orders["A-2"]["Ship To"] == "2 Main St"           # 01:00 UTC on the cutoff day: a second too late
    assert orders["B-1"]["Ship To"] == "[redacted]"          # its customer was deleted more than 7 days ago
    # SQLite keeps a UUID as 32 hex characters, PostgreSQL as uuid: normalise for the lookup
    accounts = {uuid.UUID(str(k)): v for k, v in _rows(url, "Customer Accounts", "Customer ID").items()}
    assert str(accounts[GONE]["E-Mail"]).startswith("lt1.w1.") and accounts[GONE]["select"] == "s*****"
    assert accounts[LIVE]["E-Mail"] == "live@example.org"
    assert set(_rows(url, "audit", "ref")) == {2}            # no subject column; NULL never due

    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert all(t["anonymized"] == t["erased"] == 0 for t in again.report["tables"].values())
    assert _rows(url, "order", "id") == orders


def test_sqlite_loose_typing_text_dates_numbers_in_text_and_unparseable_dates(sqlite_url, pseudonym_key, tmp_path):
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE visits (id TEXT PRIMARY KEY, who TEXT, seen TEXT)'))
        conn.execute(sa.text("INSERT INTO visits VALUES ('v1', 'alice@example.org', '2026-01-01T10:00:00Z'),"
                             "('v2', 12345, '2026-01-02 00:00:00+05:00'), ('v3', 'bob', 'last tuesday'),"
                             "('v4', 'carol', '2026-11-20 00:00:00')"))
    engine.dispose()
    policy = tmp_path / "loose.yaml"
    policy.write_text("""
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}
tables:
  visits:
    key: id
    retain: {for: 30d, from: seen}
    when_expired: anonymize
    columns:
      who: pseudonymize
""")
    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=sqlite_url)
    assert result.status == "succeeded", [e for e in result.report["expectations"] if not e["success"]]
    rows = _rows(sqlite_url, "visits", "id")
    assert rows["v1"]["who"].startswith("lt1.w1.")
    assert str(rows["v2"]["who"]).startswith("lt1.w1.")      # a number stored in a text column
    assert rows["v3"]["who"] == "bob"                        # an unparseable date never falls due
    assert rows["v4"]["who"] == "carol"                      # not yet due


def test_a_sqlite_text_column_holding_no_dates_is_refused_as_a_retention_timestamp(sqlite_url, pseudonym_key,
                                                                                    tmp_path):
    """SQLite keeps dates as text, so a text `from` column is allowed there; one whose values read as no date
    at all (a country named by mistake) would let nothing ever fall due. Refused up front, naming the column,
    without quoting a value; once it holds dates, the same policy runs."""
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE visits (id TEXT PRIMARY KEY, country TEXT, seen TEXT)"))
        conn.execute(sa.text("INSERT INTO visits VALUES ('v1', 'Sweden', NULL), ('v2', 'Chile', NULL), "
                             "('v3', NULL, NULL)"))
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "tables:\n  visits: {key: id, retain: {for: 30d, from: country}, when_expired: erase}\n")
    proc = lethe("run", "--policy", str(policy), "--store", sqlite_url, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    assert ("tables.visits.retain.from: column visits.country holds text that reads as no date (none of its first "
            "2 values)") in proc.stderr
    assert "Sweden" not in proc.stderr and len(_rows(sqlite_url, "visits", "id")) == 3

    policy.write_text(policy.read_text().replace("from: country", "from: seen"))  # NULL only: nothing to judge
    assert lethe("check", "--policy", str(policy), "--store", sqlite_url).returncode == 0
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE visits SET seen = '2026-01-01T10:00:00Z' WHERE id = 'v1'"))
    engine.dispose()
    ran = lethe("run", "--policy", str(policy), "--store", sqlite_url, "--as-of", "2026-11-22",
                "--report-dir", str(tmp_path / "r"))
    assert ran.returncode == 0, ran.stderr
    assert set(_rows(sqlite_url, "visits", "id")) == {"v2", "v3"}


@pytest.mark.parametrize("declared", ["DATETIME", "DATE", "TIMESTAMP"])
def test_unix_times_in_a_sqlite_datetime_column_are_refused_as_a_retention_timestamp(sqlite_url, pseudonym_key,
                                                                                    tmp_path, declared):
    """SQLite lets a DATETIME column hold numbers; julianday() reads a Unix time as no date, so no row ever fell
    due and every run reported `succeeded` while rows from 2020 stayed. Refused up front like a text column
    that holds no dates, for a `retain.from` and a `deleted_at` alike."""
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE visits (id INTEGER PRIMARY KEY, who INTEGER, seen {declared})"))
        conn.execute(sa.text(f"CREATE TABLE people (pid INTEGER PRIMARY KEY, gone {declared})"))
        conn.execute(sa.text("INSERT INTO visits VALUES (1, 1, 1577836800), (2, 1, 1577836800123)"))
        conn.execute(sa.text("INSERT INTO people VALUES (1, 1577836800)"))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "subjects: {table: people, id: pid, deleted_at: gone, erase_after: 30d}\n"
                      "tables:\n  visits: {key: id, subject: who, retain: {for: 30d, from: seen}, when_expired: erase,"
                      " when_subject_deleted: erase}\n")
    before = snapshot(sqlite_url)
    proc = lethe("run", "--policy", str(policy), "--store", sqlite_url, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    for path, column in (("tables.visits.retain.from", "visits.seen"), ("subjects.deleted_at", "people.gone")):
        assert (f"{path}: column {column} holds values that read as no date ({declared} is only its declared "
                "type on SQLite)") in proc.stderr
    assert "a Unix time is not read as one" in proc.stderr and "1577836800" not in proc.stderr
    assert snapshot(sqlite_url) == before


def test_text_timestamps_on_postgresql_are_refused_up_front_naming_table_and_column(pg_url, pseudonym_key, tmp_path):
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE visits (id text PRIMARY KEY, seen text)'))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "tables:\n  visits: {key: id, retain: {for: 30d, from: seen}, when_expired: erase}\n")
    proc = lethe("run", "--policy", str(policy), "--store", pg_url, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "tables.visits.retain.from: column visits.seen is of type TEXT" in proc.stderr


def test_form_checks_reach_anonymized_rows_by_uuid_and_text_keys(store, tmp_path):
    """Verification finds anonymized rows through their markers (key text cast back to the key's type):
    a raw value written over each anonymized value is counted, on UUID and text keys alike."""
    url, policy = store
    first = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert first.status == "succeeded"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text('UPDATE "Customer Accounts" SET "E-Mail" = \'raw@example.org\' '
                             'WHERE "E-Mail" LIKE \'lt1.%\''))
        conn.execute(sa.text('UPDATE "order" SET "Ship To" = \'4 Main St\' WHERE "Ship To" = \'[redacted]\''))
    engine.dispose()

    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)

    failed = {e["name"]: e["unexpected_count"] for e in again.report["expectations"] if not e["success"]}
    assert failed == {"form.Customer Accounts.E-Mail": 1, "form.Customer Accounts.E-Mail.no_email": 1,
                      "form.order.Ship To": 2}


def _instant(value: object) -> dt.datetime:
    """A stored timestamp as an aware UTC instant (text, naive UTC or aware)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def test_held_rows_cross_to_a_vault_on_the_other_database_and_return_intact(store, pg, tmp_path, monkeypatch):
    """UUID subjects and zoned timestamps survive a vault of the other kind: a PostgreSQL store with a
    SQLite vault, a SQLite store (zone offsets kept as text) with a PostgreSQL vault. Holds still match
    the rows in the vault, so nothing is released early; on release the rows come back at the same
    instants, whatever the database session's time zone."""
    url, policy = store
    monkeypatch.setenv("PGTZ", "Europe/Berlin")  # a naive timestamp read in this zone would move by an hour
    on_pg = url.startswith("postgresql")
    vault = f"sqlite:///{tmp_path / 'vault.db'}" if on_pg else pg.url(pg.create_database("vault"))
    policy.write_text(POLICY.replace("tables:\n", "legal_holds: {table: legal_holds}\ntables:\n", 1))
    engine = sa.create_engine(url)
    holds = sa.Table("legal_holds", sa.MetaData(), sa.Column("hold_id", sa.String(20), primary_key=True),
                     *(sa.Column(c, sa.String) for c in ("subject_id", "table_name", "record_key", "case_ref")),
                     sa.Column("placed_at", sa.DateTime), sa.Column("released_at", sa.DateTime))
    holds.create(engine)
    with engine.begin() as conn:
        conn.execute(holds.insert(), [
            # a subject is named as the store writes it: uuid text on PostgreSQL, 32 hex digits on SQLite
            {"hold_id": "H-subject", "subject_id": str(GONE) if on_pg else GONE.hex, "table_name": None,
             "record_key": None, "case_ref": "C-1", "placed_at": dt.datetime(2026, 1, 1)},
            {"hold_id": "H-row", "subject_id": None, "table_name": "order", "record_key": "A-1", "case_ref": "C-2",
             "placed_at": dt.datetime(2026, 1, 1)},
        ])
    engine.dispose()

    held = run(policy, AS_OF, report_dir=tmp_path / "r", store=url, vault=vault)

    assert held.status == "succeeded", [e for e in held.report["expectations"] if not e["success"]]
    assert held.report["vault"]["moved"] == 3 and held.report["vault"]["released"] == 0
    copies = _rows(vault, "order", "id")
    assert set(copies) == {"A-1", "B-1"} and set(_rows(url, "order", "id")) == {"A-2"}
    assert _instant(copies["A-1"]["from"]) == dt.datetime(2025, 11, 21, 23, 30, tzinfo=dt.UTC)
    assert copies["A-1"]["Ship To"] == "1 Main St" and copies["B-1"]["lethe_hold_ids"] == "H-subject"

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(holds.update().values(released_at=dt.datetime(2026, 1, 2)))
    engine.dispose()
    released = run(policy, AS_OF, report_dir=tmp_path / "r", store=url, vault=vault)

    assert released.status == "succeeded", [e for e in released.report["expectations"] if not e["success"]]
    assert released.report["vault"]["released"] == 3 and not _rows(vault, "order", "id")
    orders = _rows(url, "order", "id")
    assert _instant(orders["A-1"]["from"]) == dt.datetime(2025, 11, 21, 23, 30, tzinfo=dt.UTC)
    assert orders["A-1"]["Ship To"] == "[redacted]" and orders["B-1"]["note"].startswith("lt1.w1.")
    assert uuid.UUID(str(orders["B-1"]["customer"])) == GONE
    accounts = {uuid.UUID(str(k)): v for k, v in _rows(url, "Customer Accounts", "Customer ID").items()}
    assert str(accounts[GONE]["E-Mail"]).startswith("lt1.w1.")


def _run_on_one_row(url: str, tmp_path, table: str, row: str, rule: str) -> subprocess.CompletedProcess:
    """`lethe run` as of 2026-11-22 on a store of one table (`table` is its CREATE TABLE body) holding one row
    (`row`, VALUES syntax), under a policy of that one table's `rule` (YAML flow mapping)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table}"))
        conn.execute(sa.text(f"INSERT INTO {table.split()[0]} VALUES {row}"))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      f"tables:\n  {table.split()[0]}: {rule}\n")
    return lethe("run", "--policy", str(policy), "--store", url, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"))


def test_pseudonymize_on_a_32_bit_integer_column_is_refused_up_front(store_url, pseudonym_key, tmp_path):
    """Integer pseudonyms are 63-bit (the same value in every table and run), so a PostgreSQL INTEGER or
    SMALLINT column cannot hold them: refused before anything is written, naming the column and the fix.
    SQLite's integers are 64-bit whatever their declared type."""
    proc = _run_on_one_row(store_url, tmp_path, "staff (id INTEGER PRIMARY KEY, badge INTEGER, born TIMESTAMP)",
                           "(1, 4711, '2001-01-01 00:00:00')",
                           "{key: id, retain: {for: 1y, from: born}, when_expired: anonymize, "
                           "columns: {badge: pseudonymize}}")
    badge = _rows(store_url, "staff", "id")[1]["badge"]
    if store_url.startswith("sqlite"):
        assert proc.returncode == 0, proc.stderr
        assert badge != 4711 and 0 <= badge < 2**63
        return
    assert proc.returncode == 2
    assert ("tables.staff.columns.badge: pseudonymize writes 64-bit integers but column staff.badge is "
            "INTEGER (32-bit); valid: widen it to BIGINT") in proc.stderr
    assert badge == 4711 and "lethe_ledger" not in sa.inspect(sa.create_engine(store_url)).get_table_names()


def test_a_text_column_too_narrow_for_what_its_operator_writes_is_refused_up_front(store_url, pseudonym_key,
                                                                                    tmp_path):
    """A pseudonym is its key id plus 40 characters, longer than a VARCHAR(36) holding a UUID; a fill value
    may be longer than its column; "192.168.117.0/24" does not fit the VARCHAR(15) of an IPv4 address.
    PostgreSQL would fail the chunk mid-run (StringDataRightTruncation): the policy is refused before anything
    is written, naming the column, the length needed and the fix. SQLite does not enforce declared lengths,
    so there the values are written."""
    proc = _run_on_one_row(store_url, tmp_path, "ops (id INTEGER PRIMARY KEY, operator VARCHAR(36), "
                           "note VARCHAR(4), ip VARCHAR(15), seen VARCHAR(16), started TIMESTAMP)",
                           "(1, '6f1c0e8a-4a0e-4d8e-9a59-6d2c0f6b1a01', 'ok', '192.168.117.20', '2026-01-15 10:00', "
                           "'2001-01-01 00:00:00')",
                           "{key: id, retain: {for: 1y, from: started}, when_expired: anonymize, columns: "
                           "{operator: pseudonymize, note: {redact: {with: '[redacted]'}}, ip: generalize_ip, "
                           "seen: {generalize_date: month}}}")
    row = _rows(store_url, "ops", "id")[1]
    if store_url.startswith("sqlite"):
        assert proc.returncode == 0, proc.stderr
        assert row["operator"].startswith("lt1.w1.") and row["note"] == "[redacted]"
        assert row["ip"] == "192.168.117.0/24" and row["seen"] == "2026-01-01 00:00"
        return
    assert proc.returncode == 2, proc.stderr
    assert "ops.seen" not in proc.stderr  # generalize_date writes ISO text in the spelling it read: it fits
    assert ("tables.ops.columns.operator: pseudonymize writes up to 47 characters but column ops.operator is "
            "VARCHAR(36); valid: widen it to VARCHAR(47) or TEXT") in proc.stderr
    assert ("tables.ops.columns.note: redact writes up to 10 characters but column ops.note is VARCHAR(4)"
            in proc.stderr)
    assert "tables.ops.columns.ip: generalize_ip writes up to 16 characters but column ops.ip is VARCHAR(15)" in (
        proc.stderr)
    assert row["operator"] == "6f1c0e8a-4a0e-4d8e-9a59-6d2c0f6b1a01" and row["note"] == "ok"
    assert "lethe_ledger" not in sa.inspect(sa.create_engine(store_url)).get_table_names()


def test_a_fill_value_for_a_unique_column_is_refused_up_front(store_url, pseudonym_key, tmp_path):
    """Every anonymized row gets the same fill value, so a UNIQUE column takes it once: the run failed part-way
    on the second row (exit 3, IntegrityError) and so did every run after it. Refused before anything is written,
    naming the column and what would work; redacting a nullable UNIQUE column to NULL stays valid."""
    proc = _run_on_one_row(store_url, tmp_path, "members (id INTEGER PRIMARY KEY, email VARCHAR(80) UNIQUE, "
                           "nick VARCHAR(20) UNIQUE, left_at TIMESTAMP)",
                           "(1, 'ann@example.org', 'ann', '2001-01-01 00:00:00'), "
                           "(2, 'bob@example.org', 'bob', '2001-01-01 00:00:00')",
                           "{key: id, retain: {for: 1y, from: left_at}, when_expired: anonymize, columns: "
                           "{email: {redact: {with: '[redacted]'}}, nick: redact}}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("tables.members.columns.email: redact writes the same value into every anonymized row but "
            "members.email is UNIQUE, so the second such row would fail the run; valid: pseudonymize") in proc.stderr
    assert "columns.nick" not in proc.stderr and "@" not in proc.stderr
    assert _rows(store_url, "members", "id")[2]["email"] == "bob@example.org"
    assert "lethe_ledger" not in sa.inspect(sa.create_engine(store_url)).get_table_names()


def test_fake_values_longer_than_their_column_are_refused_up_front_naming_the_length_they_need(
        pg_url, pseudonym_key, tmp_path):
    """A fake is drawn from a pool fixed by the key, so its longest value is known before anything is written:
    a VARCHAR(5) cannot hold every fake name, and PostgreSQL would fail the chunk mid-run. Widened to the
    length named, the same run succeeds and every value fits."""
    proc = _run_on_one_row(pg_url, tmp_path, "crew (id INTEGER PRIMARY KEY, who VARCHAR(5), joined TIMESTAMP)",
                           "(1, 'Ann', '2001-01-01 00:00:00')",
                           "{key: id, retain: {for: 1y, from: joined}, when_expired: anonymize, "
                           "columns: {who: {fake: name}}}")
    assert proc.returncode == 2, proc.stderr
    needed = re.search(r"tables\.crew\.columns\.who: fake writes up to (\d+) characters but column crew\.who is "
                       r"VARCHAR\(5\); valid: widen it to VARCHAR\(\1\) or TEXT", proc.stderr)
    assert needed, proc.stderr
    assert _rows(pg_url, "crew", "id")[1]["who"] == "Ann"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE crew ALTER COLUMN who TYPE VARCHAR({needed[1]})"))
        conn.execute(sa.text("INSERT INTO crew SELECT g, left(md5(g::text), 5), '2001-01-01' "
                             "FROM generate_series(2, 3000) g"))
    engine.dispose()

    proc = lethe("run", "--policy", str(tmp_path / "p.yaml"), "--store", pg_url, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"))

    assert proc.returncode == 0, proc.stderr
    names = [r["who"] for r in _rows(pg_url, "crew", "id").values()]
    assert len(names) == 3000 and names[0] != "Ann" and all(" " in n for n in names)
    assert max(map(len, names)) <= int(needed[1])


def test_personal_text_keys_of_deleted_rows_leave_lethes_tables_and_long_keys_work(store_url, pseudonym_key,
                                                                                   tmp_path):
    """Lethe marks a row anonymized by its key as text. When the key is an email and the application later
    deletes the row, the next run forgets the marker: Lethe keeps no personal value the store no longer has.
    Keys longer than 255 characters work too, also in a marker table an earlier version made VARCHAR(255)."""
    long_key = "x" * 300 + "@example.org"
    if store_url.startswith("postgresql"):
        engine = sa.create_engine(store_url)
        with engine.begin() as conn:  # as an earlier Lethe created it
            conn.execute(sa.text("CREATE TABLE lethe_anonymized (table_name VARCHAR(255), row_key VARCHAR(255), "
                                 "run_id VARCHAR(80) NOT NULL, PRIMARY KEY (table_name, row_key))"))
        engine.dispose()
    first = _run_on_one_row(store_url, tmp_path, "members (email VARCHAR(400) PRIMARY KEY, name TEXT, joined DATE)",
                            f"('ann@example.org', 'Ann', '2001-01-01'), ('{long_key}', 'Bo', '2001-01-01'), "
                            "('cy@example.org', 'Cy', '2001-01-01')",
                            "{key: email, retain: {for: 1y, from: joined}, when_expired: anonymize, "
                            "columns: {name: redact}}")
    assert first.returncode == 0, first.stderr
    def markers() -> set[str]:
        return set(_rows(store_url, "lethe_anonymized", "row_key"))

    assert markers() == {"ann@example.org", long_key, "cy@example.org"}
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM members WHERE email = 'ann@example.org'"))
    engine.dispose()

    again = lethe("run", "--policy", str(tmp_path / "p.yaml"), "--store", store_url, "--as-of", "2026-11-22",
                  "--report-dir", str(tmp_path / "r"))

    assert again.returncode == 0, again.stderr
    assert markers() == {long_key, "cy@example.org"}
    assert {k: r["name"] for k, r in _rows(store_url, "members", "email").items()} == {long_key: None,
                                                                                       "cy@example.org": None}
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        lethe_tables = [t for t in sa.inspect(engine).get_table_names() if t.startswith("lethe_")]
        dumped = repr([conn.execute(sa.text(f"SELECT * FROM {t}")).all() for t in lethe_tables])
    engine.dispose()
    assert "ann@example.org" not in dumped


@pytest.mark.parametrize("later", ["taken out of the policy", "erased instead"])
def test_email_keys_of_deleted_rows_leave_the_markers_after_the_table_leaves_the_policy_or_stops_anonymizing(
        store_url, pseudonym_key, tmp_path, later):
    """Markers hold text keys (emails) of anonymized rows. Once the table is taken out of the policy, or no
    longer anonymizes, the rows the application deletes afterwards must still leave Lethe's tables: the
    promise "Lethe keeps no personal value the store no longer has" does not end with a policy change."""
    first = _run_on_one_row(store_url, tmp_path, "members (email VARCHAR(400) PRIMARY KEY, name TEXT, joined DATE)",
                            "('ann@example.org', 'Ann', '2001-01-01'), ('bo@example.org', 'Bo', '2001-01-01')",
                            "{key: email, retain: {for: 1y, from: joined}, when_expired: anonymize, "
                            "columns: {name: redact}}")
    assert first.returncode == 0, first.stderr
    assert set(_rows(store_url, "lethe_anonymized", "row_key")) == {"ann@example.org", "bo@example.org"}
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, at DATE)"))
        conn.execute(sa.text("DELETE FROM members WHERE email = 'ann@example.org'"))
    engine.dispose()
    policy = tmp_path / "p2.yaml"
    rule = ("members: {key: email, retain: {for: 50y, from: joined}, when_expired: erase}"
            if later == "erased instead" else "notes: {key: id, retain: {for: 1y, from: at}, when_expired: erase}")
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      f"tables:\n  {rule}\n")

    again = lethe("run", "--policy", str(policy), "--store", store_url, "--as-of", "2026-11-22",
                  "--report-dir", str(tmp_path / "r"))

    assert again.returncode == 0, again.stderr
    assert set(_rows(store_url, "lethe_anonymized", "row_key")) == {"bo@example.org"}  # the live row's stays


def test_postgresql_only_types_cross_to_a_sqlite_vault_and_back(pg_url, pseudonym_key, tmp_path):
    """inet, cidr, arrays and jsonb have no SQLite form: the vault keeps them as text and JSON, copies
    verify, and released rows return with their PostgreSQL types."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE hits (id bigint PRIMARY KEY, ip inet, net cidr, at timestamptz,"
                             " tags text[], doc jsonb)"))
        conn.execute(sa.text("CREATE TABLE legal_holds (hold_id text PRIMARY KEY, subject_id text, table_name text,"
                             " record_key text, case_ref text, placed_at timestamptz, released_at timestamptz)"))
        conn.execute(sa.text("INSERT INTO hits VALUES (1, '10.1.2.3', '10.1.0.0/16', '2025-01-01 10:00+02',"
                             " ARRAY['a','b'], '{\"k\": 1}'), (2, '2001:db8::1', NULL, '2025-01-02', NULL, NULL)"))
        conn.execute(sa.text("INSERT INTO legal_holds VALUES ('H1', NULL, 'hits', NULL, 'C-1', now(), NULL)"))
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  hits: {key: id, retain: {for: 90d, from: at}, when_expired: anonymize,"
                      " columns: {ip: redact}}\n")
    vault = f"sqlite:///{tmp_path / 'vault.db'}"

    held = run(policy, AS_OF, report_dir=tmp_path / "r", store=pg_url, vault=vault)

    assert held.status == "succeeded" and held.report["vault"]["moved"] == 2
    copies = _rows(vault, "hits", "id")
    assert copies[1]["ip"] == "10.1.2.3" and copies[1]["net"] == "10.1.0.0/16" and copies[1]["tags"] == ["a", "b"]
    assert copies[2]["doc"] is None and _instant(copies[1]["at"]) == dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE legal_holds SET released_at = now() - interval '1 day'"))
    engine.dispose()

    released = run(policy, AS_OF, report_dir=tmp_path / "r", store=pg_url, vault=vault)

    assert released.status == "succeeded" and released.report["vault"]["released"] == 2
    rows = _rows(pg_url, "hits", "id")
    assert rows[1]["ip"] is None and str(rows[1]["net"]) == "10.1.0.0/16" and rows[1]["tags"] == ["a", "b"]
    assert rows[1]["doc"] == {"k": 1} and _instant(rows[1]["at"]) == dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC)


@pytest.mark.parametrize("ipv6_prefix", [48, 120])  # 120: past PostgreSQL's SQL form, so pandas does it
def test_generalize_ip_on_postgresql_inet_and_cidr_columns(pg_url, pseudonym_key, tmp_path, ipv6_prefix):
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE logins (id bigint PRIMARY KEY, ip inet NOT NULL, net cidr, at timestamp)"))
        conn.execute(sa.text("INSERT INTO logins VALUES (1, '203.0.113.77', '198.51.100.0/24', '2025-01-01'),"
                             " (2, '2001:db8:abcd:12::7', NULL, '2025-01-01'), (3, '192.0.2.1', NULL, '2026-11-01')"))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "tables:\n  logins: {key: id, retain: {for: 90d, from: at}, when_expired: anonymize, columns:"
                      f" {{ip: {{generalize_ip: {{ipv4_prefix: 24, ipv6_prefix: {ipv6_prefix}}}}},"
                      " net: {generalize_ip: {ipv4_prefix: 16}}}}\n")
    check = lethe("check", "--policy", str(policy), "--store", pg_url)
    assert check.returncode == 0, check.stderr

    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=pg_url)

    assert result.status == "succeeded", [e for e in result.report["expectations"] if not e["success"]]
    rows = {k: {c: None if v is None else str(v) for c, v in r.items()}
            for k, r in _rows(pg_url, "logins", "id").items()}
    assert rows[1]["ip"] == "203.0.113.0/24" and rows[1]["net"] == "198.51.0.0/16"
    assert rows[2]["ip"] == ("2001:db8:abcd::/48" if ipv6_prefix == 48 else "2001:db8:abcd:12::/120")
    assert rows[3]["ip"] == "192.0.2.1"  # not due


# Operation records of people: `jobs` rules follow in each test.
PEOPLE_AND_JOBS = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}
subjects: {table: people, id: pid, deleted_at: gone_at, erase_after: 7d}
tables:
  people:
    key: pid
    subject: pid
    when_subject_deleted: keep
  jobs:
    key: rec
    subject: operator
"""


def _people_and_jobs(url: str, tmp_path, jobs_rules: str, people: list[dict], jobs: list[dict]) -> Path:
    """Tables people(pid, gone_at) and jobs(rec, operator, started, notes) with these rows; the policy's path."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    people_t = sa.Table("people", meta, sa.Column("pid", sa.String(20), primary_key=True),
                        sa.Column("gone_at", sa.DateTime))
    jobs_t = sa.Table("jobs", meta, sa.Column("rec", sa.Integer, primary_key=True, autoincrement=False),
                      sa.Column("operator", sa.String(80)), sa.Column("started", sa.Date), sa.Column("notes", sa.Text))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(people_t.insert(), people)
        conn.execute(jobs_t.insert(), [{"notes": None, **j} for j in jobs])
    engine.dispose()
    policy = tmp_path / "jobs.yaml"
    policy.write_text(PEOPLE_AND_JOBS + jobs_rules)
    return policy


def test_a_subject_column_that_is_itself_anonymized_is_read_once_and_shifts_by_the_original_subject(
        store_url, pseudonym_key, tmp_path):
    """Operation records keep who operated only as a pseudonym: the subject column is anonymized too, while
    the per-subject date shift still needs the original subject, read before anything changes."""
    old, recent = dt.date(2024, 3, 1), dt.date(2026, 10, 1)
    policy = _people_and_jobs(store_url, tmp_path, """    retain: {for: 1y, from: started}
    when_expired: anonymize
    when_subject_deleted: anonymize
    columns:
      operator: pseudonymize
      started: {shift_date: {max_days: 30}}
      notes: redact
""", [{"pid": "op-1", "gone_at": None}, {"pid": "op-2", "gone_at": None}], [
        {"rec": 1, "operator": "op-1", "started": old, "notes": "valve"},
        {"rec": 2, "operator": "op-1", "started": old + dt.timedelta(days=5), "notes": "pump"},
        {"rec": 3, "operator": "op-2", "started": old, "notes": "seal"},
        {"rec": 4, "operator": "op-2", "started": recent, "notes": "not due"},
    ])

    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url)

    assert result.status == "succeeded", [e for e in result.report["expectations"] if not e["success"]]
    assert result.report["tables"]["jobs"]["anonymized"] == 3
    rows = _rows(store_url, "jobs", "rec")
    token = {k: rows[k]["operator"] for k in (1, 2, 3)}
    assert all(t.startswith("lt1.w1.") for t in token.values())
    assert token[1] == token[2] != token[3]                  # the same operator, the same pseudonym
    shift = {k: (rows[k]["started"] - d).days for k, d in ((1, old), (2, old + dt.timedelta(days=5)), (3, old))}
    assert shift[1] == shift[2] and all(abs(s) <= 30 for s in shift.values())  # one offset per original subject
    assert all(rows[k]["notes"] is None for k in (1, 2, 3))
    assert rows[4] == {"rec": 4, "operator": "op-2", "started": recent, "notes": "not due"}

    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url)
    assert again.report["tables"]["jobs"]["anonymized"] == 0 and _rows(store_url, "jobs", "rec") == rows


def test_a_row_whose_anonymization_moves_its_retention_clock_past_the_cutoff_is_erased_in_the_same_run(
        store_url, pseudonym_key, tmp_path):
    """Anonymized for its deleted subject, a row's `retain.from` date is generalized to the start of its year,
    before the 10-year cutoff (2016-11-22): erasure by retention now applies, in this run, not the next one
    (whose work the run's own retention check would otherwise report as left undone)."""
    policy = _people_and_jobs(store_url, tmp_path, """    retain: {for: 10y, from: started}
    when_expired: erase
    when_subject_deleted: anonymize
    columns:
      started: {generalize_date: year}
""", [{"pid": "gone", "gone_at": dt.datetime(2026, 11, 1)}, {"pid": "live", "gone_at": None}], [
        {"rec": 1, "operator": "gone", "started": dt.date(2016, 12, 20)},  # -> 2016-01-01: now expired
        {"rec": 2, "operator": "gone", "started": dt.date(2017, 1, 5)},    # -> 2017-01-01: not yet
        {"rec": 3, "operator": "live", "started": dt.date(2016, 12, 20)},  # not due at all
    ])

    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url)

    assert result.status == "succeeded", [e for e in result.report["expectations"] if not e["success"]]
    jobs_report = result.report["tables"]["jobs"]
    assert (jobs_report["due"], jobs_report["anonymized"], jobs_report["erased"]) == (2, 2, 1)
    rows = _rows(store_url, "jobs", "rec")
    assert set(rows) == {2, 3}
    assert rows[2]["started"] == dt.date(2017, 1, 1) and rows[3]["started"] == dt.date(2016, 12, 20)

    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url)
    assert again.report["tables"]["jobs"]["erased"] == again.report["tables"]["jobs"]["anonymized"] == 0
    assert _rows(store_url, "jobs", "rec") == rows


def test_a_column_named_like_a_vault_provenance_column_is_refused_up_front_when_holds_are_configured(
        store_url, pseudonym_key, tmp_path):
    """A vault table is its source's columns plus `lethe_checksum`, `lethe_run_id`, ...: a source column of one
    of those names made every run that moved a held row fail part-way (DuplicateColumnError, exit 3), and the
    table's other due rows were never processed. Refused before anything is written, naming the columns."""
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE jobs (id INTEGER PRIMARY KEY, at TIMESTAMP, lethe_checksum TEXT, "
                             "lethe_note TEXT)"))
        conn.execute(sa.text("INSERT INTO jobs VALUES (1, '2020-01-01 00:00:00', 'abc', 'x'), "
                             "(2, '2020-01-01 00:00:00', 'def', 'y')"))
        conn.execute(sa.text("CREATE TABLE legal_holds (hold_id INTEGER PRIMARY KEY, subject_id TEXT, "
                             "table_name TEXT, record_key TEXT, case_ref TEXT, placed_at TIMESTAMP, "
                             "released_at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO legal_holds VALUES (7, NULL, 'jobs', '1', 'C-1', '2025-01-01 00:00:00', "
                             "NULL)"))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
                      "legal_holds: {table: legal_holds}\n"
                      "tables:\n  jobs: {key: id, retain: {for: 1y, from: at}, when_expired: erase}\n")
    check = lethe("check", "--policy", str(policy), "--store", store_url)
    assert check.returncode == 2
    assert "tables.jobs: column(s) lethe_checksum have the names of the provenance columns" in check.stderr
    proc = lethe("run", "--policy", str(policy), "--store", store_url, "--vault", f"sqlite:///{tmp_path}/v.db",
                 "--as-of", "2026-11-22", "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    assert set(_rows(store_url, "jobs", "id")) == {1, 2}
    assert "lethe_ledger" not in sa.inspect(sa.create_engine(store_url)).get_table_names()


def test_generalize_date_on_timestamptz_truncates_utc_days_whatever_the_database_time_zone(pg, pg_url,
                                                                                          pseudonym_key, tmp_path):
    """A database whose TimeZone is not UTC (ALTER DATABASE ... SET timezone) made date_trunc, and the zone
    timestamptz values are read back in, local: 2025-12-31 20:00 UTC became 2025-12-31 15:00 UTC (Tokyo's
    2026-01-01) and was folded into the aggregate as the day 2026-01-01. Sessions are pinned to UTC."""
    pg.admin(f"ALTER DATABASE \"{pg_url.rsplit('/', 1)[1]}\" SET timezone TO 'Asia/Tokyo'")
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE acct (id INTEGER PRIMARY KEY, created TIMESTAMPTZ, deleted TIMESTAMPTZ)"))
        conn.execute(sa.text("CREATE TABLE ev (id INTEGER PRIMARY KEY, uid INTEGER, at TIMESTAMPTZ)"))
        conn.execute(sa.text("INSERT INTO acct VALUES (1, '2025-12-31 20:00:00+00', '2026-01-01 00:00:00+00')"))
        conn.execute(sa.text("INSERT INTO ev VALUES (1, 1, '2025-12-31 20:00:00+00'), "
                             "(2, NULL, '2026-03-01 23:30+00')"))
    engine.dispose()
    policy = tmp_path / "tz.yaml"
    policy.write_text("""
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}
subjects: {table: acct, id: id, deleted_at: deleted, erase_after: 1d}
tables:
  acct: {key: id, subject: id, when_subject_deleted: anonymize, columns: {created: {generalize_date: year}}}
  ev: {key: id, subject: uid, retain: {for: 1d, from: at}, when_expired: anonymize,
       when_subject_deleted: anonymize, columns: {at: {generalize_date: day}}}
aggregates:
  st: {from: acct, dimensions: {d: {column: created, generalize_date: day}}}
""")
    result = run(policy, dt.date(2026, 3, 31), report_dir=tmp_path / "r", store=pg_url)
    assert result.status == "succeeded", result.report.get("error")
    utc = dt.UTC
    assert _instant(_rows(pg_url, "acct", "id")[1]["created"]) == dt.datetime(2025, 1, 1, tzinfo=utc)
    ev = _rows(pg_url, "ev", "id")
    assert _instant(ev[1]["at"]) == dt.datetime(2025, 12, 31, tzinfo=utc)
    assert _instant(ev[2]["at"]) == dt.datetime(2026, 3, 1, tzinfo=utc)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        days = conn.execute(sa.text("SELECT d FROM st")).scalars().all()
    engine.dispose()
    assert [d.date() if isinstance(d, dt.datetime) else d for d in days] == [dt.date(2025, 12, 31)]


def test_a_foreign_key_that_would_cascade_into_a_table_the_policy_does_not_name_is_refused_up_front(
        pg_url, pseudonym_key, tmp_path):
    """Erasing a profile made PostgreSQL delete its addresses (ON DELETE CASCADE), a table the policy does not
    name: gone with no ledger entry and no count in the report, even the address a legal hold named. Refused
    before anything is written, naming the foreign key and the fixes; with the table in the policy it runs."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE profiles (pid INTEGER PRIMARY KEY, gone TIMESTAMP)"))
        conn.execute(sa.text("CREATE TABLE addresses (aid INTEGER PRIMARY KEY, street TEXT, "
                             "pid INTEGER REFERENCES profiles (pid) ON DELETE CASCADE)"))
        conn.execute(sa.text("CREATE TABLE orders (oid INTEGER PRIMARY KEY, "
                             "pid INTEGER REFERENCES profiles (pid) ON DELETE SET NULL)"))
        conn.execute(sa.text("INSERT INTO profiles VALUES (1, '2026-01-01'), (2, NULL)"))
        conn.execute(sa.text("INSERT INTO addresses VALUES (10, 'Main St 1', 1), (20, 'Elm St 2', 2)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (100, 1)"))
    engine.dispose()
    policy = tmp_path / "p.yaml"
    text = ("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: w1}\n"
            "subjects: {table: profiles, id: pid, deleted_at: gone, erase_after: 30d}\n"
            "tables:\n  profiles: {key: pid, subject: pid, when_subject_deleted: erase}\n")
    policy.write_text(text)
    where = ("--policy", str(policy), "--store", pg_url)

    proc = lethe("run", *where, "--as-of", "2026-11-22", "--report-dir", str(tmp_path / "r"))

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("tables.profiles: deleting its rows would make the database delete rows of addresses, which the "
            "policy does not name (foreign key addresses(pid) whose on-delete action is CASCADE)") in proc.stderr
    assert "change rows of orders" in proc.stderr and "ON DELETE RESTRICT or NO ACTION" in proc.stderr
    assert set(_rows(pg_url, "addresses", "aid")) == {10, 20} and set(_rows(pg_url, "profiles", "pid")) == {1, 2}
    assert "Main St" not in proc.stderr

    policy.write_text(text + "  addresses: {key: aid, subject: pid, when_subject_deleted: erase}\n"
                             "  orders: {key: oid, subject: pid, when_subject_deleted: keep}\n")
    assert lethe("check", *where).returncode == 0
