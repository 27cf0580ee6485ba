"""Registration aggregates: every processed subject counted exactly once, and nothing personal kept."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from anonymizers import TOKEN_REGEX
from pipelines.runner import run
from pipelines.seed import seed
from tests.support.stores import cloud3d_policy, cutoff, frame, lethe

AS_OF = dt.date(2026, 11, 22)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
FULL_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def expected_subjects(store: str, as_of: dt.date) -> int:
    """Deleted accounts past the 30-day grace period and not under an active hold (the oracle)."""
    accounts = frame(store, "accounts")
    due = accounts[pd.to_datetime(accounts.deleted_at) <= cutoff(as_of, "30d")]
    holds = frame(store, "legal_holds")
    now = pd.Timestamp.now()
    active = holds[holds.released_at.isna() | (pd.to_datetime(holds.released_at) > now)]
    held = set(active.loc[active.table_name.isna() | (active.table_name == "accounts"), "subject_id"].dropna())
    return int((~due.user_id.isin(held)).sum())


@pytest.fixture
def seeded(store_and_vault, pseudonym_key, tmp_path):
    store, vault = store_and_vault
    seed(store, rows=8_000, seed=21, as_of=AS_OF)
    return store, vault, cloud3d_policy(tmp_path)


def _total(store: str) -> int:
    return int(frame(store, "registration_stats").row_count.sum())


def test_each_processed_subject_is_counted_exactly_once_across_backfill_and_reruns(seeded, tmp_path):
    store, vault, policy = seeded
    expected = expected_subjects(store, AS_OF)
    for day in (AS_OF - dt.timedelta(days=20), AS_OF - dt.timedelta(days=10), AS_OF, AS_OF,
                AS_OF - dt.timedelta(days=5)):
        run(policy, day, report_dir=tmp_path / "r", store=store, vault=vault)
    assert _total(store) == expected
    folds = frame(store, "lethe_ledger").query("action == 'fold'").row_count.sum()
    assert folds == expected


def test_a_killed_run_neither_loses_nor_double_counts_a_fold(seeded, tmp_path):
    store, vault, policy = seeded
    expected = expected_subjects(store, AS_OF)
    args = ("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", store, "--vault", vault,
            "--report-dir", str(tmp_path / "r"))
    killed = lethe(*args, env={"LETHE_FAULT": "apply.chunk.accounts:2", "LETHE_CHUNK_SIZE": "7"})
    assert killed.returncode in (-9, 137), killed.stderr[-400:]
    partial = _total(store)
    assert 0 < partial < expected
    assert lethe(*args).returncode in (0, 1)
    assert _total(store) == expected


def test_aggregate_holds_no_email_full_ip_or_pseudonym_and_coarsening_keeps_groups_large(seeded, tmp_path):
    store, vault, policy = seeded
    result = run(policy, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    stats = frame(store, "registration_stats")
    assert set(stats.columns) == {"day", "country", "email_domain", "ip_prefix", "signup_channel", "row_count"}
    for value in map(str, stats.drop(columns=["row_count"]).to_numpy().ravel()):
        assert not EMAIL.search(value)
        assert not FULL_IPV4.match(value)
        assert not re.match(TOKEN_REGEX, value)
    assert (stats.row_count >= 5).all() or len(stats) == 1
    assert result.status == "succeeded", [e for e in result.report["expectations"] if not e["success"]]


def test_small_groups_fail_verification_without_coarsening(seeded, tmp_path):
    store, vault, policy = seeded
    text = policy.read_text()
    no_coarsen = tmp_path / "no_coarsen.yaml"
    no_coarsen.write_text("\n".join(line for line in text.splitlines() if not line.strip().startswith("coarsen:")))
    result = run(no_coarsen, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    small = [e for e in result.report["expectations"] if "min_group_size" in e["name"]]
    assert small and not small[0]["success"]
    stats = frame(store, "registration_stats")
    assert small[0]["unexpected_count"] == int((stats.row_count < 5).sum())
    assert result.status == "failed" and result.exit_code == 1


def test_an_aggregate_dimension_keeping_raw_emails_fails_verification(seeded, tmp_path):
    """A dimension without an operator on `email` would keep every address after its account is gone. The
    aggregate's text dimensions are checked for emails, phone numbers and full IPs like anonymized columns;
    the reference dimensions (a domain, a network, a country) pass."""
    store, vault, policy = seeded
    raw = tmp_path / "raw_email.yaml"
    raw.write_text("\n".join(line.replace("{column: email, email_domain: true}", "{column: email}")
                             for line in policy.read_text().splitlines() if not line.strip().startswith("coarsen:")))
    result = run(raw, AS_OF, report_dir=tmp_path / "r", store=store, vault=vault)
    checks = {e["name"]: e for e in result.report["expectations"] if e["name"].startswith("aggregate.")}
    emails = int(frame(store, "registration_stats").email_domain.str.contains("@").sum())
    assert emails > 0
    assert not checks["aggregate.registration_stats.email_domain.no_email"]["success"]
    assert checks["aggregate.registration_stats.email_domain.no_email"]["unexpected_count"] == emails
    assert checks["aggregate.registration_stats.country.no_email"]["success"]
    assert checks["aggregate.registration_stats.ip_prefix.no_ip"]["success"]  # networks, not addresses
    assert result.status == "failed" and result.exit_code == 1
    assert "@" not in (tmp_path / "r").joinpath(result.report_path.name).read_text()


def test_a_dimension_added_by_altering_the_table_without_its_unique_key_is_refused_up_front(seeded, tmp_path):
    """Adding a dimension to a live aggregate: the store's table (created with a unique key over the old
    dimensions) is refused with "choose another name"; the natural next step, ALTER TABLE ... ADD COLUMN,
    passed `lethe check` and then failed every run part-way on the unique key (exit 3, the subjects table
    never processed). Refused up front instead, naming the key and the fix; nothing is written."""
    import sqlalchemy as sa

    from tests.support.stores import snapshot

    store, vault, policy = seeded
    first = lethe("run", "--policy", str(policy), "--as-of", AS_OF.isoformat(), "--store", store, "--vault", vault,
                  "--report-dir", str(tmp_path / "r"))
    assert first.returncode == 0, first.stderr
    added = tmp_path / "added.yaml"
    old = "      signup_channel: {column: signup_channel}\n"
    text = policy.read_text()
    assert old in text
    added.write_text(text.replace(old, old + "      month: {column: created_at, generalize_date: month}\n"))
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE registration_stats ADD COLUMN month TIMESTAMP"))
    engine.dispose()
    before = snapshot(store)
    check = lethe("check", "--policy", str(added), "--store", store)
    again = lethe("run", "--policy", str(added), "--as-of", (AS_OF + dt.timedelta(days=60)).isoformat(),
                  "--store", store, "--vault", vault, "--report-dir", str(tmp_path / "r"))
    for proc in (check, again):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "the store's table registration_stats has a unique key over" in proc.stderr
        assert "must cover every dimension" in proc.stderr
    assert snapshot(store) == before
