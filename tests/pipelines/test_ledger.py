"""`lethe ledger verify` on a ledger changed by hand: whatever was done to it, exit 1 naming what, never a traceback.

A small schema of its own (visits erased after 30 days, sessions anonymized), so the ledger has a few entries.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from pipelines.runner import run
from tests.support.stores import lethe

POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}
tables:
  visits:
    key: id
    retain: {for: 30d, from: at}
    when_expired: erase
  sessions:
    key: id
    retain: {for: 30d, from: at}
    when_expired: anonymize
    columns:
      ip: {generalize_ip: {ipv4_prefix: 24}}
"""
AS_OF = dt.date(2026, 6, 1)


@pytest.fixture
def ledgered(store_url, pseudonym_key, tmp_path):
    """A store one run has written ledger entries to; returns (policy path, store URL)."""
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        for table, extra in (("visits", ""), ("sessions", ", ip VARCHAR(64)")):
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, at TIMESTAMP{extra})"))
        conn.execute(sa.text("INSERT INTO visits VALUES (1, '2026-01-01'), (2, '2026-05-30')"))
        conn.execute(sa.text("INSERT INTO sessions VALUES (1, '2026-01-01', '198.51.100.7')"))
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url)
    assert result.status == "succeeded" and result.report["ledger"]["entries"] == 2
    return policy, store_url


def _tamper(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql))
    engine.dispose()


@pytest.mark.parametrize(("tamper", "message"), [
    # a column of the ledger dropped: the select of every column failed with a traceback
    (["ALTER TABLE lethe_ledger DROP COLUMN keys_digest"], "BROKEN: lethe_ledger has no column keys_digest"),
    # the head record's fields emptied (a table recreated by hand): comparing None with a number was a TypeError
    (["DROP TABLE lethe_ledger_head",
      "CREATE TABLE lethe_ledger_head (id INTEGER PRIMARY KEY, seq BIGINT, entry_hash VARCHAR(64))",
      "INSERT INTO lethe_ledger_head VALUES (1, NULL, NULL)"],
     "BROKEN at entry 2: the chain's head record (lethe_ledger_head) is not an entry number and a hash"),
])
def test_a_ledger_whose_tables_were_changed_by_hand_fails_verification_without_a_traceback(ledgered, tamper,
                                                                                          message):
    policy, store = ledgered
    _tamper(store, *tamper)
    bad = lethe("ledger", "verify", "--policy", str(policy), "--store", store)
    assert bad.returncode == 1, bad.stderr
    assert "Traceback" not in bad.stderr and message in bad.stderr


def test_a_second_head_row_added_by_hand_is_not_taken_for_the_head(ledgered):
    policy, store = ledgered
    _tamper(store, "INSERT INTO lethe_ledger_head (id, seq, entry_hash) VALUES (0, 1, 'forged')")
    ok = lethe("ledger", "verify", "--policy", str(policy), "--store", store)
    assert ok.returncode == 0 and "OK, 2 entries" in ok.stdout


def test_a_ledger_removed_whole_fails_verification_and_no_run_starts_a_new_one_over_it(ledgered, tmp_path):
    """Both ledger tables dropped: verify said "empty (no run has written to this store yet)", exit 0, and the
    next run began a fresh chain that verified."""
    from tests.support.stores import snapshot

    policy, store = ledgered
    _tamper(store, "DROP TABLE lethe_ledger", "DROP TABLE lethe_ledger_head")
    removed = "the ledger tables (lethe_ledger, lethe_ledger_head) were removed from this store"

    bad = lethe("ledger", "verify", "--policy", str(policy), "--store", store)
    assert bad.returncode == 1 and f"BROKEN at entry 1: {removed}" in bad.stderr

    _tamper(store, "INSERT INTO visits VALUES (3, '2026-01-02')")  # due: a run would erase it
    before = snapshot(store)
    refused = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", store,
                    "--report-dir", str(tmp_path / "r2"))
    assert refused.returncode == 2 and removed in refused.stderr and "restore" in refused.stderr
    assert snapshot(store) == before and not (tmp_path / "r2").exists()

    plan = run(policy, AS_OF, dry_run=True, report_dir=tmp_path / "r3", store=store)
    assert plan.report["ledger"]["verified"] is False and plan.report["ledger"]["first_bad_entry"] == 1


def test_a_store_lethe_never_changed_has_an_empty_ledger_that_verifies(store_url, pseudonym_key, tmp_path):
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE visits (id INTEGER PRIMARY KEY, at TIMESTAMP)"))
        conn.execute(sa.text("CREATE TABLE sessions (id INTEGER PRIMARY KEY, at TIMESTAMP, ip VARCHAR(64))"))
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    ok = lethe("ledger", "verify", "--policy", str(policy), "--store", store_url)
    assert ok.returncode == 0 and "ledger: empty" in ok.stdout
    assert run(policy, AS_OF, report_dir=tmp_path / "r", store=store_url).status == "succeeded"
    again = lethe("ledger", "verify", "--policy", str(policy), "--store", store_url)
    assert again.returncode == 0 and "OK, 0 entries" in again.stdout
