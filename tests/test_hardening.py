"""Hostile input, secrets, leaks, files and interruptions: the promises of docs/security.md."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import cli, runner
from pipelines.demo import ensure_key_file
from pipelines.errors import InputError, PolicyError
from pipelines.policy import parse_policy
from pipelines.report import safe_path
from pipelines.seed import seed
from tests.expectations import test_verify as corruptions
from tests.support.stores import REFERENCE_POLICY, ROOT, lethe, snapshot, user_tables

AS_OF = dt.date(2026, 11, 22)
SQL_WORDS = re.compile(r"\b(SELECT|UPDATE|DELETE|INSERT|COPY|DROP|CREATE|ALTER|TRUNCATE)\b")


def test_no_sql_is_built_from_strings_only_from_sqlalchemy_constructs():
    """Identifiers come from reflection and are quoted by SQLAlchemy; an f-string or .format() that
    builds SQL must quote every identifier it interpolates."""
    offenders = []
    for package in ("pipelines", "anonymizers", "expectations", "dags"):
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                built = re.search(r"""\bf["']""", code) or ".format(" in code or re.search(r"%\s*\(", code)
                if built and SQL_WORDS.search(code):
                    interpolations = re.findall(r"\{([^{}]+)\}", code)
                    if any("quote(" not in i and not i.strip().startswith(("'", '"')) for i in interpolations):
                        offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "SQL built from strings:\n" + "\n".join(offenders)


# -- hostile policies ------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["90d", "7y", "-1d", "0d", "999999999y", "erase",
                                                           "anonymize", "keep", "env:X", "file:/nonexistent",
                                                           "redact", "pseudonymize", "{mask: 1}"]))
keys = st.sampled_from(["version", "tables", "pseudonymization", "key", "key_id", "subjects", "retain",
                        "for", "from", "columns", "when_expired", "when_subject_deleted", "aggregates",
                        "dimensions", "column", "min_group_size", "legal_holds", "table", "id", "subject",
                        "deleted_at", "erase_after", "mask", "coarsen", "x"])
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=6)), max_leaves=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_any_yaml_structure_is_a_policy_or_a_policy_error(tree):
    text = yaml.safe_dump(tree, allow_unicode=True)
    try:
        parse_policy(text, source="fuzz.yaml")
    except PolicyError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert "Traceback" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400))
def test_any_text_is_a_policy_or_a_policy_error(text):
    try:
        parse_policy(text, source="fuzz.yaml")
    except PolicyError as exc:
        assert exc.problems


@pytest.mark.parametrize("text", [
    "a: &x [*x]\n",                                                 # a self-referencing alias
    "a: !!python/name:os.system\n",                                 # a Python tag
    "x: " + "[" * 5000 + "]" * 5000 + "\n",                          # absurdly nested
    "version: 1\n" + "".join(f"k{i}: {i}\n" for i in range(200_000)),  # huge file
    "version: 1\ntables:\n  t: {key: id}\n  t: {key: id}\n",          # duplicate table
])
def test_hostile_yaml_is_refused_with_a_readable_message(text):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="hostile.yaml")
    assert len(str(info.value)) < 2_000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.one_of(scalars, st.dictionaries(st.sampled_from(["mask", "fake", "redact", "truncate", "bucket",
                                                                "generalize_ip", "generalize_date", "nope"]),
                                               st.one_of(scalars, st.dictionaries(keys, scalars, max_size=3)),
                                               max_size=2)))
def test_fuzzed_operator_specs_end_in_exit_2_and_never_touch_the_store(fuzz_store, spec, capsys):
    url, policy_dir = fuzz_store
    text = REFERENCE_POLICY.read_text().replace("phone: {mask: {keep_last: 2}}",
                                                "phone: " + json.dumps(spec, default=str))
    path = policy_dir / "fuzz.yaml"
    path.write_text(text)
    before = snapshot(url)
    code = cli.main(["run", "--policy", str(path), "--store", url, "--vault", f"sqlite:///{policy_dir / 'v.db'}",
                     "--as-of", "2026-11-22", "--report-dir", str(policy_dir / "r")])
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    if code == 2:
        assert "lethe: " in err and "Traceback" not in err
        assert snapshot(url) == before


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{directory / 'store.db'}"
    seed(url, rows=600, seed=1, as_of=AS_OF)
    os.environ.setdefault("LETHE_PSEUDONYM_KEY", os.urandom(32).hex())
    return url, directory


# -- secrets ---------------------------------------------------------------------------------------------

def _everything_written(store: str, vault: str, reports: Path) -> str:
    parts = [p.read_text(errors="replace") for p in reports.rglob("*") if p.is_file()]
    for url in (store, vault):
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                if table.startswith("lethe_") or url == vault:
                    parts.extend(repr(tuple(r)) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"')))
        engine.dispose()
    return "\n".join(parts)


def test_the_key_never_appears_in_logs_reports_ledger_vault_or_errors(store_and_vault, tmp_path, pseudonym_key):
    store, vault = store_and_vault
    seed(store, rows=3_000, seed=9, as_of=AS_OF)
    reports = tmp_path / "r"
    outputs = []
    for args in (["check", "--policy", str(REFERENCE_POLICY), "--store", store],
                 ["plan", "--policy", str(REFERENCE_POLICY), "--as-of", "2026-11-22", "--store", store,
                  "--report-dir", str(reports)],
                 ["run", "--policy", str(REFERENCE_POLICY), "--as-of", "2026-11-22", "--store", store,
                  "--vault", vault, "--report-dir", str(reports)],
                 ["ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store],
                 ["holds", "--policy", str(REFERENCE_POLICY), "--store", store, "--vault", vault],
                 # a failing statement: the vault URL points at a directory
                 ["run", "--policy", str(REFERENCE_POLICY), "--as-of", "2026-11-23", "--store", store,
                  "--vault", f"sqlite:///{tmp_path}", "--report-dir", str(reports)]):
        proc = lethe("-vv", *args)
        outputs.append(proc.stdout + proc.stderr)
    assert "DEBUG" in "".join(outputs) or "INFO" in "".join(outputs) or outputs
    everything = "\n".join(outputs) + _everything_written(store, vault, reports)
    for form in (pseudonym_key, pseudonym_key.encode().hex(), pseudonym_key[:24]):
        assert form not in everything


def test_no_key_reaches_the_postgresql_server_log_even_when_it_logs_every_statement(pg, pseudonym_key, tmp_path):
    """Servers log statements with their bind parameters (slow-query logs, log_statement): the keys the SQL
    forms and the ledger digest use must not be among them."""
    database = pg.create_database("logged")
    pg.admin(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'", database=database)
    pg.admin(f"ALTER DATABASE \"{database}\" SET log_min_duration_statement = 0", database=database)
    store = pg.url(database)
    seed(store, rows=3_000, seed=9, as_of=AS_OF)
    policy = tmp_path / "keyed.yaml"  # pseudonymize (the key) and shift_date (a derived key) in SQL
    policy.write_text(REFERENCE_POLICY.read_text().replace("created_at: {generalize_date: month}",
                                                           "created_at: {shift_date: {max_days: 30}}"))
    server_log = pg.root / "log"
    start = server_log.stat().st_size

    result = runner.run(policy, AS_OF, report_dir=tmp_path / "r", store=store, vault=pg.url(pg.create_database("v")))

    assert result.status == "succeeded", result.report["expectations"]
    assert result.report["tables"]["orders"]["anonymized"] > 0
    with server_log.open("rb") as f:
        f.seek(start)
        logged = f.read().decode("utf-8", "replace")
    assert "UPDATE orders SET" in logged and "parameters:" in logged, "the server did not log the run's statements"
    from anonymizers import sql_secrets

    secrets_used = list(sql_secrets._known.values())
    assert len(secrets_used) >= 4  # the key, shift_date's derived key, the ledger digest's two padded keys
    for form in [pseudonym_key, pseudonym_key.encode().hex(), *(s.hex() for s in secrets_used)]:
        assert form not in logged


def test_rotating_the_key_leaves_existing_tokens_and_uses_the_new_key_for_new_rows(sqlite_url, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("LETHE_PSEUDONYM_KEY", os.urandom(32).hex())
    seed(sqlite_url, rows=3_000, seed=4, as_of=AS_OF)
    runner.run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=sqlite_url,
               vault=f"sqlite:///{tmp_path / 'v.db'}")
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        old = dict(conn.execute(sa.text("SELECT id, email FROM orders WHERE email LIKE 'lt1.k2026.%'")).all())
    assert old
    rotated = tmp_path / "rotated.yaml"
    rotated.write_text(REFERENCE_POLICY.read_text().replace("key_id: k2026", "key_id: k2027"))
    monkeypatch.setenv("LETHE_PSEUDONYM_KEY", os.urandom(32).hex())
    runner.run(rotated, AS_OF + dt.timedelta(days=400), report_dir=tmp_path / "r", store=sqlite_url,
               vault=f"sqlite:///{tmp_path / 'v.db'}")
    with engine.connect() as conn:
        now = dict(conn.execute(sa.text("SELECT id, email FROM orders")).all())
    engine.dispose()
    assert all(now[k] == v for k, v in old.items())
    assert any(v.startswith("lt1.k2027.") for v in now.values())


# -- personal values ---------------------------------------------------------------------------------------

def test_no_personal_value_leaks_when_every_suite_fails(store_and_vault, tmp_path, pseudonym_key, monkeypatch,
                                                        caplog, capsys):
    store, vault = store_and_vault
    seed(store, rows=3_000, seed=11, as_of=AS_OF)
    setup = corruptions.Setup(store, vault, REFERENCE_POLICY, tmp_path / "r", corruptions._personal_values(store))
    real_verify = runner.verify

    def corrupt_everything(ctx, *changed):
        for corrupt in (corruptions._put_back_due_row, corruptions._raw_email_into_pseudonym,
                        corruptions._alter_vault_row, corruptions._change_aggregate_count,
                        corruptions._edit_ledger_entry):
            corrupt(setup)
        return real_verify(ctx, *changed)

    monkeypatch.setattr(runner, "verify", corrupt_everything)
    caplog.set_level(logging.DEBUG)
    result = runner.run(REFERENCE_POLICY, AS_OF, report_dir=setup.reports, store=store, vault=vault)

    failed = {e["name"] for e in result.report["expectations"] if not e["success"]}
    assert {"retention.access_logs", "form.accounts.email", "vault.access_logs",
            "aggregate.registration_stats.total", "ledger.chain"} <= failed
    captured = capsys.readouterr()
    written = "\n".join(p.read_text() for p in setup.reports.rglob("*") if p.is_file())
    engine = sa.create_engine(store)
    with engine.connect() as conn:
        ledger = repr(conn.execute(sa.text("SELECT * FROM lethe_ledger")).all())
    engine.dispose()
    haystack = written + ledger + caplog.text + captured.out + captured.err
    leaked = [v for v in setup.personal if v in haystack]
    assert not leaked, f"{len(leaked)} seeded personal values leaked"


# -- files -------------------------------------------------------------------------------------------------

def test_report_and_key_files_are_owner_only(store_url, tmp_path, pseudonym_key):
    seed(store_url, rows=1_000, seed=2, as_of=AS_OF)
    result = runner.run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "r", store=store_url,
                        vault=f"sqlite:///{tmp_path / 'v.db'}")
    files = [p for p in (tmp_path / "r").iterdir() if p.is_file()]
    assert result.report_path in files and len(files) >= 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    key = tmp_path / "keys" / "pseudonym.key"
    ensure_key_file(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text().strip()) == 64


@pytest.mark.parametrize("run_id", ["../escape", "/etc/passwd", "a/../../b", ".hidden"])
def test_a_run_id_cannot_write_outside_the_report_directory(tmp_path, run_id):
    with pytest.raises(InputError):
        safe_path(tmp_path, run_id, ".json")


# -- interruptions -----------------------------------------------------------------------------------------

def test_random_sigkill_and_sigterm_then_a_normal_run_equals_an_uninterrupted_run(store_and_vault, tmp_path, pg,
                                                                                  pseudonym_key):
    store, vault = store_and_vault
    if store.startswith("sqlite"):
        control, control_vault = f"sqlite:///{tmp_path / 'c.db'}", f"sqlite:///{tmp_path / 'cv.db'}"
    else:
        control, control_vault = pg.url(pg.create_database("c")), pg.url(pg.create_database("cv"))
    for url in (store, control):
        seed(url, rows=3_000, seed=13, as_of=AS_OF)
    args = [str(Path(sys.executable).with_name("lethe")), "run", "--policy", str(REFERENCE_POLICY), "--as-of",
            AS_OF.isoformat(), "--store", store, "--vault", vault, "--report-dir", str(tmp_path / "r")]
    env = {**os.environ, "LETHE_CHUNK_SIZE": "200"}
    rng = random.Random(20261122)
    interrupted = 0
    for _ in range(5):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        time.sleep(rng.uniform(0.8, 3.5))
        if proc.poll() is None:
            proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM]))
            interrupted += 1
        proc.wait(timeout=120)
    assert interrupted >= 3
    final = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    runner.run(REFERENCE_POLICY, AS_OF, report_dir=tmp_path / "c", store=control, vault=control_vault)
    tables = user_tables(store)
    assert snapshot(store, tables) == snapshot(control, tables)
    verify = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
    assert verify.returncode == 0
