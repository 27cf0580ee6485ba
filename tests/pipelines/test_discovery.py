"""Discovery on a schema that is not the reference one: cutoff boundaries, NULLs, late arrivals."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from pipelines.runner import run

POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}
subjects: {table: people, id: pid, deleted_at: gone_at, erase_after: 1m}
tables:
  people:
    key: pid
    subject: pid
    when_subject_deleted: anonymize
    columns:
      mail: pseudonymize
  events:
    key: id
    subject: owner
    retain: {for: 4m, from: ts}
    when_expired: erase
    when_subject_deleted: erase
"""
AS_OF = dt.date(2026, 6, 30)  # minus 4 calendar months = 2026-02-28 00:00:00 (clamped)
CUTOFF = dt.datetime(2026, 2, 28)


def _schema(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    sa.Table("people", meta, sa.Column("pid", sa.String(36), primary_key=True), sa.Column("mail", sa.String),
             sa.Column("gone_at", sa.DateTime))
    sa.Table("events", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("owner", sa.String(36)), sa.Column("ts", sa.DateTime))
    meta.create_all(engine)
    return engine


@pytest.fixture
def store(store_url, pseudonym_key, tmp_path):
    engine = _schema(store_url)
    second = dt.timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO people (pid, mail, gone_at) VALUES (:p, :m, :g)"), [
            {"p": "a1b2", "m": "live@example.org", "g": None},
            {"p": "c3d4", "m": "gone@example.org", "g": dt.datetime(2026, 5, 30)},          # exactly at grace cutoff
            {"p": "e5f6", "m": "recent@example.org", "g": dt.datetime(2026, 5, 30, 0, 0, 1)},  # a second inside grace
        ])
        conn.execute(sa.text("INSERT INTO events (id, owner, ts) VALUES (:i, :o, :t)"), [
            {"i": 1, "o": "a1b2", "t": CUTOFF},               # exactly at the cutoff: due
            {"i": 2, "o": "a1b2", "t": CUTOFF + second},      # a second later: not due
            {"i": 3, "o": "a1b2", "t": CUTOFF - second},      # a second earlier: due
            {"i": 4, "o": "a1b2", "t": None},                 # NULL never falls due
            {"i": 5, "o": None, "t": dt.datetime(2026, 6, 1)},  # no subject, recent: stays
            {"i": 6, "o": "c3d4", "t": dt.datetime(2026, 6, 29)},  # deleted subject past grace: erased
            {"i": 7, "o": "e5f6", "t": dt.datetime(2026, 6, 29)},  # deleted subject inside grace: stays
        ])
    engine.dispose()
    policy = tmp_path / "custom.yaml"
    policy.write_text(POLICY)
    return store_url, policy


def _ids(url: str, table: str, key: str) -> set:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.text(f"SELECT {key} FROM {table}")).scalars())
    engine.dispose()
    return ids


def test_cutoff_is_inclusive_to_the_second_and_null_never_falls_due(store, tmp_path):
    url, policy = store
    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert result.status == "succeeded"
    assert _ids(url, "events", "id") == {2, 4, 5, 7}
    assert result.report["tables"]["events"]["erased"] == 3
    assert result.report["tables"]["events"]["due_by_retention"] == 2
    assert result.report["tables"]["events"]["due_by_subject_deletion"] == 1


def test_subject_deleted_exactly_at_grace_cutoff_is_anonymized_with_a_text_key(store, tmp_path):
    url, policy = store
    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert result.report["tables"]["people"]["anonymized"] == 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        mails = dict(conn.execute(sa.text("SELECT pid, mail FROM people")).all())
    engine.dispose()
    assert mails["a1b2"] == "live@example.org"
    assert mails["e5f6"] == "recent@example.org"
    assert mails["c3d4"] != "gone@example.org" and mails["c3d4"].startswith("lt1.t1.")


def test_late_arriving_row_with_an_old_timestamp_is_found_by_the_next_run(store, tmp_path):
    url, policy = store
    run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events (id, owner, ts) VALUES (99, 'a1b2', :t)"),
                     {"t": dt.datetime(2025, 1, 1)})
    engine.dispose()
    again = run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert again.report["tables"]["events"]["erased"] == 1
    assert again.report["tables"]["people"]["anonymized"] == 0  # never anonymized twice
    assert 99 not in _ids(url, "events", "id")


@pytest.mark.parametrize("as_of", [dt.date(9999, 12, 30), dt.date(9999, 12, 31)])
def test_a_zero_period_as_of_the_last_days_python_can_hold_finds_every_timestamped_row(store, tmp_path, as_of):
    """SQLite's text prefilter looked two days past the cutoff, after 9999-12-31: OverflowError, the run failed
    part-way (exit 3). As of the calendar's last days, every row with a timestamp is due for `for: 0d`."""
    url, policy = store
    policy.write_text(POLICY.replace("for: 4m", "for: 0d"))
    result = run(policy, as_of, report_dir=tmp_path / "r", store=url)
    assert result.status == "succeeded", result.report.get("error")
    assert _ids(url, "events", "id") == {4}  # NULL never falls due


def test_a_microsecond_after_the_cutoff_is_not_due(store, tmp_path):
    """SQLite's julianday() rounds to the millisecond, so a timestamp up to half a millisecond after the cutoff
    compared equal to it and was erased before its time; PostgreSQL compares microseconds."""
    url, policy = store
    micro = dt.timedelta(microseconds=1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events (id, owner, ts) VALUES (:i, NULL, :t)"), [
            {"i": 11, "t": CUTOFF + micro},                               # a microsecond later: not due
            {"i": 12, "t": CUTOFF + 499 * micro},                         # still rounds to the cutoff: not due
            {"i": 13, "t": CUTOFF - micro},                               # a microsecond earlier: due
            {"i": 14, "t": CUTOFF - 300 * micro},                         # rounds up to the cutoff: due
        ])
    engine.dispose()
    run(policy, AS_OF, report_dir=tmp_path / "r", store=url)
    assert _ids(url, "events", "id") >= {11, 12} and not _ids(url, "events", "id") & {1, 13, 14}


def test_sqlite_text_timestamps_after_the_cutoff_by_a_fraction_of_a_millisecond_are_not_due(sqlite_url,
                                                                                           pseudonym_key, tmp_path):
    """The same on SQLite text in its other spellings: a zone offset, a 'T', fractions of any length."""
    engine = sa.create_engine(sqlite_url)
    values = {
        1: ("2026-02-28 00:00:00", True), 2: ("2026-02-28T02:00:00.000+02:00", True),
        3: ("2026-02-28T02:00:00.0003+02:00", False), 4: ("2026-02-27T23:59:59.9997Z", True),
        5: ("2026-02-28 00:00:00.000001", False), 6: ("2026-02-27T23:00:00.0004-01:00", False),
        7: ("2026-02-28", True), 8: ("2026-02-27 23:59:59.99951", True),
    }
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE visits (id INTEGER PRIMARY KEY, seen TEXT)"))
        conn.execute(sa.text("INSERT INTO visits VALUES (:i, :s)"), [{"i": i, "s": s} for i, (s, _) in values.items()])
    engine.dispose()
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}\n"
                      "tables:\n  visits: {key: id, retain: {for: 4m, from: seen}, when_expired: erase}\n")
    run(policy, AS_OF, report_dir=tmp_path / "r", store=sqlite_url)
    assert _ids(sqlite_url, "visits", "id") == {i for i, (_, due) in values.items() if not due}
