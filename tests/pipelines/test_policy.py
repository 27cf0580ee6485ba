"""Policy errors: every mistake named with its path, exit 2, nothing touched."""

from __future__ import annotations

import textwrap

import pytest

from pipelines.errors import PolicyError
from pipelines.policy import parse_policy
from pipelines.seed import seed
from tests.support.stores import REFERENCE_POLICY, lethe, snapshot

GOOD = REFERENCE_POLICY.read_text()


def _with(text: str) -> str:
    return textwrap.dedent(text)


@pytest.mark.parametrize(("text", "message"), [
    # not YAML at all
    ("version: [1\n", "not valid YAML at line"),
    # a duplicate key is an error, not "the last one wins"
    ("version: 1\nversion: 1\n", "duplicate key 'version'"),
    # arbitrary Python objects are never constructed
    ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    # a list instead of a mapping
    ("- a\n- b\n", "must be a YAML mapping"),
    # unknown version
    (GOOD.replace("version: 1", "version: 2"), "version: Input should be 1"),
    # a literal key is refused
    (GOOD.replace("env:LETHE_PSEUDONYM_KEY", "s3cr3t-literal-key"), "a literal key is never accepted"),
    # unknown secret scheme
    (GOOD.replace("env:LETHE_PSEUDONYM_KEY", "vault:abc"), "not a secret reference"),
    # a bad duration names the file path
    (GOOD.replace("for: 90d", "for: 90 days"), "tables.access_logs.retain.for: '90 days' is not a duration"),
    # an unknown action lists the valid ones
    (GOOD.replace("when_expired: erase", "when_expired: delete", 1), "Input should be 'erase' or 'anonymize'"),
    # a typo in a key lists the valid keys
    (GOOD.replace("    columns:", "    colums:", 1), "colums: unknown key; valid keys here: columns, key"),
    # retain without when_expired
    (GOOD.replace("    when_expired: erase\n", "", 1), "needs `when_expired`"),
    # an aggregate folded from a table the policy does not name
    (GOOD.replace("from: accounts", "from: users"), "aggregates.registration_stats.from: 'users' is not a table"),
    # absurd durations are refused
    (GOOD.replace("for: 90d", "for: 999999y"), "longer than the largest allowed"),
])
def test_policy_mistake_is_named_with_its_path(text, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_policy(text, source="p.yaml")


def test_every_mistake_is_reported_at_once():
    text = (GOOD.replace("version: 1", "version: 3").replace("for: 90d", "for: soon")
            .replace("key_id: k2026", "key_id: 'has spaces'"))
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert len(info.value.problems) == 3
    assert "3 problems" in str(info.value)


@pytest.fixture
def seeded_store(store_url, pseudonym_key):
    seed(store_url, rows=2_000, seed=3)
    return store_url


@pytest.mark.parametrize(("old", "new", "message"), [
    ("  orders:\n", "  orderz:\n", "tables.orderz: no such table in the store"),
    ("      email: pseudonymize\n", "      emial: pseudonymize\n", "tables.accounts.columns.emial: no such column"),
    ("    key: id\n", "    key: ip\n", "tables.access_logs.key: 'ip' is not the table's single-column primary key"),
    ("      phone: {mask: {keep_last: 2}}", "      phone: {mask: {keep_lats: 2}}", "tables.accounts.columns.phone"),
    ("      phone: {mask: {keep_last: 2}}", "      phone: {scramble: true}", "tables.accounts.columns.phone"),
    ("      created_at: {generalize_date: month}", "      amount: {generalize_ip: {ipv4_prefix: 24}}",
     "tables.orders.columns.amount: generalize_ip cannot be applied"),
    # redact without a fill value on a NOT NULL column would fail mid-run: refused up front
    ('      password_hash: {redact: {with: "[redacted]"}}', "      password_hash: redact",
     "redact sets NULL but accounts.password_hash is NOT NULL"),
    ("from: ts}", "from: user_id}", "tables.access_logs.retain.from: column access_logs.user_id is of type"),
])
def test_check_rejects_a_policy_that_does_not_fit_the_live_schema(seeded_store, tmp_path, old, new, message):
    assert old in GOOD
    policy = tmp_path / "bad.yaml"
    policy.write_text(GOOD.replace(old, new, 1))
    proc = lethe("check", "--policy", str(policy), "--store", seeded_store)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_names_several_schema_mistakes_and_run_touches_nothing(seeded_store, tmp_path):
    policy = tmp_path / "bad.yaml"
    policy.write_text(GOOD.replace("  orders:\n", "  orderz:\n").replace("email: pseudonymize", "emial: pseudonymize"))
    before = snapshot(seeded_store)
    check = lethe("check", "--policy", str(policy), "--store", seeded_store)
    run = lethe("run", "--policy", str(policy), "--store", seeded_store, "--as-of", "2026-11-22",
                "--report-dir", str(tmp_path / "r"))
    for proc in (check, run):
        assert proc.returncode == 2
        assert "tables.orderz: no such table" in proc.stderr
        assert "tables.accounts.columns.emial: no such column" in proc.stderr
    assert snapshot(seeded_store) == before
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())


def test_check_passes_on_the_reference_policy(seeded_store):
    proc = lethe("check", "--policy", str(REFERENCE_POLICY), "--store", seeded_store)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"LETHE_PSEUDONYM_KEY": ""}, "is empty"),
    ({"LETHE_PSEUDONYM_KEY": "too-short"}, "at least 32 are required"),
])
def test_missing_empty_or_short_key_refuses_to_run(seeded_store, tmp_path, env, message):
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--store", seeded_store, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"), env=env)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert env["LETHE_PSEUDONYM_KEY"] not in proc.stderr or env["LETHE_PSEUDONYM_KEY"] == ""


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--policy", "x.yaml"], "required: --as-of"),
    (["run", "--policy", "x.yaml", "--as-of", "22/11/2026"], "--as-of must be a date YYYY-MM-DD"),
    (["plan", "--policy", "missing.yaml", "--as-of", "2026-11-22"], "missing.yaml: no such file"),
    (["seed", "--store", "sqlite:///x.db", "--rows", "many"], "expected a whole number"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    proc = lethe(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
