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
    (GOOD.replace("env:LETHE_PSEUDONYM_KEY", "vault:abc"), "vault:... is not a secret reference"),
    # a literal key with a colon in it is refused without being echoed into the log
    (GOOD.replace("env:LETHE_PSEUDONYM_KEY", "'Pass:Phrase-0123456789abcdef0123'"),
     "the value (not shown) is not a secret reference"),
    (GOOD.replace("env:LETHE_PSEUDONYM_KEY", "'env:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c'"),
     "env:... needs a variable name after the colon"),
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
    # an escaped lone surrogate is valid YAML but no database can store it (a fill value failed mid-run)
    (GOOD.replace('password_hash: {redact: {with: "[redacted]"}}', 'password_hash: {redact: {with: "x\\ud800"}}'),
     "not valid Unicode"),
    # an aggregate folded from a table whose rows never fall due would never count anything
    (GOOD.replace("when_subject_deleted: anonymize", "when_subject_deleted: keep", 1),
     "aggregates.registration_stats.from: no row of 'accounts' ever falls due"),
])
def test_policy_mistake_is_named_with_its_path(text, message):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert message in str(info.value)
    assert "Phrase-0123" not in str(info.value) and "9f86d081884c" not in str(info.value)


def test_every_mistake_is_reported_at_once():
    text = (GOOD.replace("version: 1", "version: 3").replace("for: 90d", "for: soon")
            .replace("key_id: k2026", "key_id: 'has spaces'")
            .replace("full_name: {fake: name}", "full_name: {fake: nope}")
            .replace("{column: email, email_domain: true}", "{column: email, email_domian: true}"))
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert len(info.value.problems) == 5, info.value.problems
    assert "5 problems" in str(info.value)
    assert "tables.accounts.columns.full_name: fake: unknown provider 'nope'" in str(info.value)
    assert ("aggregates.registration_stats.dimensions.email_domain: unknown operator 'email_domian' (did you mean "
            "'email_domain'?)") in str(info.value)


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
    # the message says which column kinds would have been valid (a text fill value fits text columns only)
    ('      created_at: {generalize_date: month}', '      amount: {redact: {with: "[redacted]"}}',
     "tables.orders.columns.amount: redact cannot be applied to column orders.amount of type"),
    ('      created_at: {generalize_date: month}', '      amount: {redact: {with: "[redacted]"}}',
     "valid: redact as given takes text columns"),
    # redact without a fill value on a NOT NULL column would fail mid-run: refused up front
    ('      password_hash: {redact: {with: "[redacted]"}}', "      password_hash: redact",
     "redact sets NULL but accounts.password_hash is NOT NULL"),
    ("from: ts}", "from: user_id}", "tables.access_logs.retain.from: column access_logs.user_id is of type"),
    # an aggregate named after a table of the store that is not an aggregate: folding wrote into it, exit 3
    ("  registration_stats:\n", "  legal_holds:\n", "aggregates.legal_holds: the store already has a table "
     "legal_holds with columns hold_id"),
    # Lethe's own tables (the ledger!) are not aggregates
    ("  registration_stats:\n", "  lethe_ledger:\n", "aggregates.lethe_ledger: names starting with lethe_ are "
     "reserved"),
])
def test_check_rejects_a_policy_that_does_not_fit_the_live_schema(seeded_store, tmp_path, old, new, message):
    assert old in GOOD
    policy = tmp_path / "bad.yaml"
    policy.write_text(GOOD.replace(old, new, 1))
    proc = lethe("check", "--policy", str(policy), "--store", seeded_store)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_mistyped_table_is_answered_with_the_closest_name_and_the_stores_own_tables(seeded_store, tmp_path):
    """The message listed only the policy's tables that existed ("tables are accounts, ..."), never the store's
    other tables nor the name meant; Lethe's own tables (lethe_ledger, ...) are not the user's to name."""
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    done = lethe("run", "--policy", str(good), "--store", seeded_store, "--vault", f"sqlite:///{tmp_path / 'v.db'}",
                 "--as-of", "2026-11-22", "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr  # the store now has Lethe's tables too
    policy = tmp_path / "bad.yaml"
    policy.write_text(GOOD.replace("  orders:\n", "  orderz:\n").replace("table: accounts", "table: acounts"))
    proc = lethe("check", "--policy", str(policy), "--store", seeded_store)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "tables.orderz: no such table in the store; did you mean orders?; the store's tables are " in proc.stderr
    assert "subjects.table: no such table 'acounts'; did you mean accounts?" in proc.stderr
    listed = proc.stderr.split("tables.orderz: ", 1)[1].split("the store's tables are ", 1)[1].splitlines()[0]
    assert "teams" in listed and "support_tickets" in listed  # tables the policy does not name
    assert "lethe_" not in listed


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
    # forms date.fromisoformat reads but the SPEC's YYYY-MM-DD is not: compact, ISO week, no padding
    (["run", "--policy", "x.yaml", "--as-of", "20261122"], "--as-of must be a date YYYY-MM-DD such as"),
    (["run", "--policy", "x.yaml", "--as-of", "2026-W47-7"], "--as-of must be a date YYYY-MM-DD such as"),
    (["run", "--policy", "x.yaml", "--as-of", "2026-11-2"], "--as-of must be a date YYYY-MM-DD such as"),
    (["run", "--policy", "x.yaml", "--as-of", "2026-02-30"], "--as-of must be a date YYYY-MM-DD such as"),
    # a date so early that subtracting a retention period leaves the calendar failed the run part-way
    (["run", "--policy", "x.yaml", "--as-of", "0001-01-01"], "--as-of must be 1900-01-01 or later"),
    (["plan", "--policy", "missing.yaml", "--as-of", "2026-11-22"], "missing.yaml: no such file"),
    (["seed", "--store", "sqlite:///x.db", "--rows", "many"], "expected a whole number"),
    (["frobnicate"], "invalid choice"),
    # an empty value (an unset shell variable) fell back to the policy's store and wrote reports into the cwd
    (["run", "--policy", "x.yaml", "--as-of", "2026-11-22", "--store", ""], "argument --store: is empty"),
    (["run", "--policy", "x.yaml", "--as-of", "2026-11-22", "--vault", " "], "argument --vault: is empty"),
    (["plan", "--policy", "x.yaml", "--as-of", "2026-11-22", "--report-dir", ""], "argument --report-dir: is empty"),
    (["check", "--policy", ""], "argument --policy: is empty"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    proc = lethe(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


@pytest.fixture
def seeded_with_nullable_key(seeded_store):
    import sqlalchemy as sa

    engine = sa.create_engine(seeded_store)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE visits (ref INTEGER UNIQUE, at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO visits VALUES (1, '2010-01-01 00:00:00'), (NULL, '2010-01-01 00:00:00')"))
    engine.dispose()
    return seeded_store


def test_a_nullable_unique_key_is_refused_up_front(seeded_with_nullable_key, tmp_path):
    """A row whose key is NULL fell due on every run and was never erased: every run ended `failed`."""
    url = seeded_with_nullable_key
    policy = tmp_path / "nullable.yaml"
    policy.write_text(GOOD.replace("tables:\n", "tables:\n  visits:\n    key: ref\n    retain: {for: 1y, from: at}\n"
                                   "    when_expired: erase\n", 1))
    before = snapshot(url)
    proc = lethe("run", "--policy", str(policy), "--store", url, "--as-of", "2026-11-22",
                 "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "tables.visits.key: 'ref' is unique but nullable; valid: the table's primary key" in proc.stderr
    assert snapshot(url) == before
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["registration-stats", "select"])
def test_an_aggregate_named_like_no_plain_table_runs_and_verifies(seeded_store, tmp_path, name):
    """Great Expectations' table assets refuse names such as `registration-stats` or `select`: the run used to
    change the store and then fail in verify (exit 3), on every run after."""
    import datetime as dt

    from pipelines.runner import run

    policy = tmp_path / "named.yaml"
    policy.write_text(GOOD.replace("  registration_stats:\n", f'  "{name}":\n'))
    result = run(policy, dt.date(2026, 11, 22), report_dir=tmp_path / "r", store=seeded_store,
                 vault=f"sqlite:///{tmp_path / 'v.db'}")
    assert result.status == "succeeded", result.report["expectations"]
    assert result.report["aggregates"][name]["folded"] > 0
    names = {e["name"] for e in result.report["expectations"]}
    assert {f"aggregate.{name}.total", f"aggregate.{name}.min_group_size"} <= names


@pytest.mark.parametrize(("vault", "message"), [
    # the store itself: held rows would be "moved" into the tables they come from
    ("STORE", "names the store itself; data under legal hold must move to a separate database"),
    # the same database spelled another way (localhost for 127.0.0.1; a ./ in a SQLite path)
    ("STORE-RESPELLED", "data under legal hold must move to a separate database"),
    ("not a url", "the vault URL is not a SQLAlchemy URL"),
    ("mysqlx://u@h/db", "the vault URL names an unknown database dialect or driver 'mysqlx'; valid: sqlite:///PATH"),
    ("postgresql://u:pw@127.0.0.1:1/db", "cannot reach the vault at postgresql://u:***@127.0.0.1:1/db"),
    ("FILE/vault.db", "is not a writable directory"),
])
def test_a_vault_the_run_cannot_use_is_refused_before_anything_is_written(seeded_store, tmp_path, vault, message):
    """These used to surface mid-run (exit 3) after the lock, Lethe's tables and an error report were written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    respelled = (seeded_store.replace("127.0.0.1", "localhost") if seeded_store.startswith("postgresql")
                 else seeded_store.replace("/store.db", "/./store.db"))
    vault = {"STORE": seeded_store, "STORE-RESPELLED": respelled}.get(vault, vault.replace("FILE", f"sqlite:///{blocker}"))
    before = snapshot(seeded_store)
    proc = lethe("run", "--policy", str(REFERENCE_POLICY), "--store", seeded_store, "--vault", vault,
                 "--as-of", "2026-11-22", "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "pw" not in proc.stderr.replace("postgresql://u:***", "")
    assert snapshot(seeded_store) == before
    assert not (tmp_path / "r").exists()


def test_a_store_url_of_an_unknown_dialect_is_bad_input_not_a_traceback(tmp_path):
    proc = lethe("check", "--policy", str(REFERENCE_POLICY), "--store", "mysqlx://u@h/db")
    assert proc.returncode == 2, proc.stderr
    assert "the store URL names an unknown database dialect or driver 'mysqlx'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_new_key_under_an_old_key_id_is_refused_and_a_new_key_id_runs(seeded_store, tmp_path):
    """Rotating the key means a new key_id (tokens carry it): a new secret under the old id would mix two
    keys' tokens under one id, the same value getting two tokens nobody can tell apart. Refused up front.
    """
    reports, vault = str(tmp_path / "r"), f"sqlite:///{tmp_path / 'vault.db'}"
    first = lethe("run", "--policy", str(REFERENCE_POLICY), "--store", seeded_store, "--as-of", "2026-06-30",
                  "--report-dir", reports, "--vault", vault)
    assert first.returncode == 0, first.stderr
    new_key = "ab" * 32
    before = snapshot(seeded_store)
    for command in (["run", "--as-of", "2026-11-22", "--report-dir", reports, "--vault", vault], ["check"]):
        proc = lethe(command[0], "--policy", str(REFERENCE_POLICY), "--store", seeded_store, *command[1:],
                     env={"LETHE_PSEUDONYM_KEY": new_key})
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "pseudonymization.key_id" in proc.stderr and "new key_id" in proc.stderr
        assert new_key not in proc.stderr
    assert snapshot(seeded_store) == before
    rotated = tmp_path / "rotated.yaml"
    old_id = "key_id: k2026"
    assert old_id in GOOD
    rotated.write_text(GOOD.replace(old_id, "key_id: k2027"))
    proc = lethe("run", "--policy", str(rotated), "--store", seeded_store, "--as-of", "2026-11-22",
                 "--report-dir", reports, "--vault", vault, env={"LETHE_PSEUDONYM_KEY": new_key})
    assert proc.returncode == 0, proc.stderr
    again = lethe("run", "--policy", str(REFERENCE_POLICY), "--store", seeded_store, "--as-of", "2026-11-22",
                  "--report-dir", reports, "--vault", vault)  # the old key under its own id is still accepted
    assert again.returncode == 0, again.stderr


def test_an_operator_added_after_rows_were_anonymized_fails_verification_saying_why_and_what_to_do(
        seeded_store, tmp_path):
    """Lethe anonymizes a row once and re-checks every anonymized row against the current operators, so an
    operator added for a kept column (or changed) fails the form check on every later run. The failure says
    so, and what to do, on stderr and in the report's `hints` (names only, no value)."""
    import json

    vault = f"sqlite:///{tmp_path / 'vault.db'}"
    first = lethe("run", "--policy", str(REFERENCE_POLICY), "--store", seeded_store, "--vault", vault,
                  "--as-of", "2026-11-22", "--report-dir", str(tmp_path / "r1"))
    assert first.returncode == 0, first.stderr
    changed = tmp_path / "changed.yaml"
    old = "      phone: {mask: {keep_last: 2}}\n"
    assert old in GOOD
    changed.write_text(GOOD.replace(old, old + '      signup_channel: {redact: {with: "x"}}\n', 1))
    again = lethe("run", "--policy", str(changed), "--store", seeded_store, "--vault", vault,
                  "--as-of", "2026-11-22", "--report-dir", str(tmp_path / "r2"))
    assert again.returncode == 1, again.stdout + again.stderr
    assert "failed expectations: form.accounts.signup_channel" in again.stderr
    assert "hint: form.accounts.signup_channel: every row Lethe ever anonymized in accounts" in again.stderr
    assert "revert the change, or bring those rows into line" in again.stderr
    rep = json.loads(next((tmp_path / "r2").glob("*.json")).read_text())
    assert len(rep["hints"]) == 1 and rep["hints"][0].startswith("form.accounts.signup_channel:")
    assert "hints" not in json.loads(next((tmp_path / "r1").glob("*.json")).read_text())


def test_hints_name_only_the_failed_form_and_aggregate_total_checks():
    from pipelines.report import form_hints

    expectations = [{"name": "form.accounts.phone.no_phone", "success": False, "unexpected_count": 3},
                    {"name": "form.accounts.email", "success": True, "unexpected_count": 0},
                    {"name": "aggregate.registration_stats.total", "success": False, "unexpected_count": 1},
                    {"name": "aggregate.registration_stats.min_group_size", "success": False, "unexpected_count": 2}]
    hints = form_hints(expectations, {"accounts": {"email": object(), "phone": object()}})
    assert [h.split(":")[0] for h in hints] == ["form.accounts.phone", "aggregate.registration_stats.total"]
    assert "give the aggregate a new name" in hints[1]
