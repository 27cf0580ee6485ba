"""Verification suites end to end: every suite passes after a correct run, and each fails, for the right
reason and count, when the store or the vault is corrupted between the run's work and its verification.

The corruption is injected by wrapping `pipelines.runner.verify`, so everything else is a real
`runner.run()` on a real SQLite file and a real PostgreSQL server with real Great Expectations.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines import runner
from pipelines.seed import seed

AS_OF = dt.date(2026, 6, 30)
ROWS = 2_000
POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: k2026}
subjects: {table: accounts, id: user_id, deleted_at: deleted_at, erase_after: 30d}
legal_holds: {table: legal_holds}
tables:
  accounts:
    key: user_id
    subject: user_id
    when_subject_deleted: anonymize
    columns:
      email: pseudonymize
      full_name: {fake: name}
      phone: {mask: {keep_last: 2}}
      password_hash: {redact: {with: "[redacted]"}}
      signup_ip: {generalize_ip: {ipv4_prefix: 24, ipv6_prefix: 48}}
  access_logs:
    key: id
    subject: user_id
    retain: {for: 90d, from: ts}
    when_expired: erase
    when_subject_deleted: erase
  orders:
    key: id
    subject: user_id
    retain: {for: 7y, from: created_at}
    when_expired: anonymize
    when_subject_deleted: anonymize
    columns:
      email: pseudonymize
      shipping_address: {redact: {with: "[redacted]"}}
      card_last4: redact
  marketing_profiles:
    key: id
    subject: user_id
    retain: {for: 0d, from: consent_withdrawn_at}
    when_expired: erase
aggregates:
  registration_stats:
    from: accounts
    dimensions:
      day: {column: created_at, generalize_date: day}
      country: {column: country}
      email_domain: {column: email, email_domain: true}
      ip_prefix: {column: signup_ip, generalize_ip: {ipv4_prefix: 24, ipv6_prefix: 48}}
    min_group_size: __MIN_GROUP__
"""


@dataclass
class Setup:
    store: str
    vault: str
    policy: Path
    reports: Path
    personal: list[str]


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url)


@contextlib.contextmanager
def _begin(url: str) -> Iterator[sa.Connection]:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _personal_values(store: str) -> list[str]:
    """Every email, name, phone and IP the seed wrote: none may appear in a report or a log."""
    engine = _engine(store)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT email, full_name, phone, signup_ip FROM accounts")).all()
            ips = conn.execute(sa.text("SELECT DISTINCT ip FROM access_logs")).scalars().all()
    finally:
        engine.dispose()
    values = {v for r in rows for v in r if v} | set(ips)
    return sorted(values)


@pytest.fixture
def setup(store_and_vault, tmp_path, pseudonym_key) -> Setup:
    store, vault = store_and_vault
    seed(store, rows=ROWS, seed=11, as_of=AS_OF)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("__MIN_GROUP__", "1"))
    return Setup(store, vault, policy, tmp_path / "reports", _personal_values(store))


def _run(s: Setup) -> runner.RunResult:
    return runner.run(s.policy, AS_OF, report_dir=s.reports, store=s.store, vault=s.vault)


def _by_name(result: runner.RunResult) -> dict[str, dict]:
    return {e["name"]: e for e in result.report["expectations"]}


def _failed(result: runner.RunResult) -> dict[str, int | None]:
    return {e["name"]: e["unexpected_count"] for e in result.report["expectations"] if not e["success"]}


def test_every_suite_passes_after_a_correct_run(setup):
    result = _run(setup)

    checks = _by_name(result)
    assert result.status == "succeeded", _failed(result)
    assert result.exit_code == 0
    for name in ("retention.access_logs", "retention.orders", "retention.marketing_profiles",
                 "erasure.access_logs", "erasure.orders", "erasure.accounts", "erasure.marketing_profiles",
                 "holds.accounts", "holds.access_logs",
                 "form.accounts.email", "form.accounts.email.no_email", "form.accounts.email.no_phone",
                 "form.accounts.email.no_ip", "form.accounts.full_name.no_email", "form.accounts.phone",
                 "form.accounts.phone.no_phone", "form.accounts.password_hash", "form.accounts.signup_ip",
                 "form.orders.email", "form.orders.shipping_address", "form.orders.card_last4",
                 "aggregate.registration_stats.total", "aggregate.registration_stats.min_group_size",
                 "ledger.chain"):
        assert checks[name] == {"name": name, "success": True, "unexpected_count": 0}
    # the vault suite covers every table that has rows in the vault
    assert any(n.startswith("vault.") for n in checks)
    # keep-only and non-anonymizing tables get no form checks; generalize_ip no identifier check
    assert "form.accounts.signup_ip.no_ip" not in checks
    assert not any(n.startswith("form.access_logs") for n in checks)


# -- corruptions, each applied after the run's work and before its verification


def _put_back_due_row(s: Setup) -> None:
    """An access log far past its 90 days, of an anonymous visitor (no subject, so no hold applies)."""
    with _begin(s.store) as conn:
        conn.execute(sa.text("INSERT INTO access_logs (id, user_id, ip, url, user_agent, ts) "
                             "VALUES (987654321, NULL, '10.0.0.1', '/', NULL, '2001-01-01 00:00:00')"))


def _raw_email_into_pseudonym(s: Setup) -> None:
    """A still-live account's email written over one anonymized account's token."""
    with _begin(s.store) as conn:
        key = conn.execute(sa.text("SELECT MIN(row_key) FROM lethe_anonymized WHERE table_name = 'accounts'")).scalar()
        email = conn.execute(sa.text("SELECT email FROM accounts WHERE email LIKE '%@%' ORDER BY user_id LIMIT 1")
                             ).scalar()
        conn.execute(sa.text("UPDATE accounts SET email = :e WHERE CAST(user_id AS TEXT) = :k"),
                     {"e": email, "k": key})


def _alter_vault_row(s: Setup) -> None:
    with _begin(s.vault) as conn:
        key = conn.execute(sa.text("SELECT MIN(id) FROM access_logs")).scalar()
        conn.execute(sa.text("UPDATE access_logs SET url = '/tampered' WHERE id = :k"), {"k": key})


def _delete_vault_row(s: Setup) -> None:
    with _begin(s.vault) as conn:
        conn.execute(sa.text("DELETE FROM access_logs WHERE id = (SELECT MIN(id) FROM access_logs)"))


def _change_aggregate_count(s: Setup) -> None:
    with _begin(s.store) as conn:
        conn.execute(sa.text("INSERT INTO registration_stats (day, country, email_domain, ip_prefix, row_count) "
                             "VALUES (NULL, 'ZZ', 'tampered.invalid', NULL, 3)"))


def _edit_ledger_entry(s: Setup) -> None:
    with _begin(s.store) as conn:
        conn.execute(sa.text("UPDATE lethe_ledger SET row_count = row_count + 1 "
                             "WHERE seq = (SELECT MIN(seq) FROM lethe_ledger)"))


CORRUPTIONS = [
    # a due row put back: the retention suite counts exactly it
    pytest.param(_put_back_due_row, {"retention.access_logs": 1}, id="due-row-put-back"),
    # a raw email in a pseudonymized column: wrong form, and an email
    pytest.param(_raw_email_into_pseudonym, {"form.accounts.email": 1, "form.accounts.email.no_email": 1},
                 id="raw-email-in-pseudonym"),
    # a vault row altered: its checksum no longer matches
    pytest.param(_alter_vault_row, {"vault.access_logs": 1}, id="vault-row-altered"),
    # a vault row deleted: no checksum fails, the ledger's count of rows moved and not released does
    pytest.param(_delete_vault_row, {"vault.access_logs.rows": 1}, id="vault-row-deleted"),
    # a group of 3 that was never folded: the total is 3 off the ledger's folds
    pytest.param(_change_aggregate_count, {"aggregate.registration_stats.total": 3}, id="aggregate-changed"),
    # one ledger entry edited: the chain breaks; the entry is the first move to the vault, so the vault also
    # holds one row fewer than the ledger now claims
    pytest.param(_edit_ledger_entry, {"ledger.chain": 1, "vault.access_logs.rows": 1}, id="ledger-edited"),
]


@pytest.mark.parametrize(("corrupt", "expected"), CORRUPTIONS)
def test_when_store_is_corrupted_then_the_right_expectation_fails_without_leaking(
        setup, corrupt, expected, monkeypatch, caplog, capsys):
    real_verify = runner.verify

    def corrupt_then_verify(ctx, *changed):
        corrupt(setup)
        return real_verify(ctx, *changed)

    monkeypatch.setattr(runner, "verify", corrupt_then_verify)
    caplog.set_level(logging.DEBUG)

    result = _run(setup)

    assert result.status == "failed"
    assert result.exit_code == 1
    assert _failed(result) == expected
    for e in result.report["expectations"]:
        assert set(e) == {"name", "success", "unexpected_count"}
    report_text = result.report_path.read_text() + json.dumps(result.report)
    html = result.report_path.with_suffix(".html")
    if html.exists():
        report_text += html.read_text()
    captured = capsys.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records) + caplog.text + captured.out + captured.err
    leaked = [v for v in setup.personal if v in report_text or v in logs]
    assert not leaked, f"{len(leaked)} seeded personal values leaked"


def test_a_vault_table_dropped_or_missing_a_column_fails_the_vault_checks_naming_the_table(setup, monkeypatch):
    """A dropped vault table was skipped (the run succeeded); a dropped column failed verification part-way
    (exit 3, naming no table)."""
    real_verify = runner.verify
    held = {}

    def corrupt_then_verify(ctx, *changed):
        with _begin(setup.vault) as conn:
            held["access_logs"] = conn.execute(sa.text("SELECT COUNT(*) FROM access_logs")).scalar()
            conn.execute(sa.text("ALTER TABLE access_logs DROP COLUMN url"))
            held["accounts"] = conn.execute(sa.text("SELECT COUNT(*) FROM accounts")).scalar()
            conn.execute(sa.text("DROP TABLE accounts"))
        return real_verify(ctx, *changed)

    monkeypatch.setattr(runner, "verify", corrupt_then_verify)
    result = _run(setup)

    assert held["access_logs"] > 0 and held["accounts"] > 0
    assert result.exit_code == 1
    assert _failed(result) == {"vault.access_logs": held["access_logs"], "vault.accounts.rows": held["accounts"]}


def test_groups_below_min_group_size_are_counted_not_shown(setup):
    setup.policy.write_text(POLICY.replace("__MIN_GROUP__", "1000000"))

    result = _run(setup)

    engine = _engine(setup.store)
    with engine.connect() as conn:
        groups = conn.execute(sa.text("SELECT COUNT(*) FROM registration_stats")).scalar()
    engine.dispose()
    assert groups > 0
    assert _failed(result) == {"aggregate.registration_stats.min_group_size": groups}


def test_a_pseudonym_tampered_between_runs_fails_the_next_runs_form_checks(setup):
    """What an operator can check from outside: every run re-verifies every anonymized row, not only its own."""
    first = _run(setup)
    assert first.status == "succeeded", _failed(first)
    _raw_email_into_pseudonym(setup)

    second = _run(setup)

    assert sum(t["anonymized"] + t["erased"] for t in second.report["tables"].values()) == 0
    assert second.exit_code == 1
    assert _failed(second) == {"form.accounts.email": 1, "form.accounts.email.no_email": 1}


def test_form_checks_over_batches_of_the_markers_count_like_one_scope(setup, monkeypatch):
    """Verification reads anonymized rows in batches (GX fetches a whole scope into memory): three raw
    emails in three different batches are counted once each, under the same expectation names."""
    from pipelines import markers
    from pipelines import verify as verification

    batches: dict[str, int] = {}
    real_ranges = markers.marker_ranges

    def counted_ranges(conn, table_name, size):
        ranges = real_ranges(conn, table_name, size)
        batches[table_name] = len(ranges)
        return ranges

    def corrupt_then_verify(ctx, *changed):
        with _begin(setup.store) as conn:
            keys = conn.execute(sa.text("SELECT row_key FROM lethe_anonymized WHERE table_name = 'accounts' "
                                        "ORDER BY row_key")).scalars().all()
            for key in (keys[0], keys[len(keys) // 2], keys[-1]):
                conn.execute(sa.text("UPDATE accounts SET email = 'raw@example.org' "
                                     "WHERE CAST(user_id AS TEXT) = :k"), {"k": key})
        return real_verify(ctx, *changed)

    real_verify = runner.verify
    monkeypatch.setattr(verification, "FORM_BATCH", 2)
    monkeypatch.setattr(markers, "marker_ranges", counted_ranges)
    monkeypatch.setattr(runner, "verify", corrupt_then_verify)

    result = _run(setup)

    assert batches["accounts"] >= 3 and batches["orders"] >= 2
    assert _failed(result) == {"form.accounts.email": 3, "form.accounts.email.no_email": 3}
    names = [e["name"] for e in result.report["expectations"]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("marked, expected", [(0, 1), (3, 2), (4, 2), (5, 3)])
def test_marker_batches_cover_every_marker_once_and_none_is_empty(tmp_path, marked, expected):
    """Form checks run one GX validation per batch: an exact multiple of the batch size must not add an
    empty last batch, and no marker may fall between two batches."""
    from pipelines import markers
    from pipelines.store import connect

    engine = connect(f"sqlite:///{tmp_path / 'm.db'}", create=True)
    markers.ensure(engine)
    with engine.begin() as conn:
        conn.execute(markers.ANONYMIZED.insert(), [
            {"table_name": "t", "row_key": str(k), "run_id": "r"} for k in range(10, 10 + marked)]
            + [{"table_name": "other", "row_key": "99", "run_id": "r"}])

    ranges = markers.marker_ranges(engine, "t", 2)

    assert len(ranges) == expected
    with engine.connect() as conn:
        keys = markers.ANONYMIZED.c.row_key
        covered = [conn.execute(sa.select(keys).where(markers.ANONYMIZED.c.table_name == "t",
                                                      *([keys > lo] if lo is not None else []),
                                                      *([keys <= hi] if hi is not None else []))).scalars().all()
                   for lo, hi in ranges]
    assert sorted(k for batch in covered for k in batch) == [str(k) for k in range(10, 10 + marked)]
    assert marked == 0 or all(covered)
