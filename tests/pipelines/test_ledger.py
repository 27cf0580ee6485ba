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
