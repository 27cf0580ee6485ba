"""The human half of the report: run pages and the index, from hand-made reports and from real runs.

Real runs use the reference policy (`policies/cloud3d.yaml`) on a store that `lethe seed` filled, on
SQLite: the pages depend only on the report dict, which is the same on every store.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from pipelines import report, report_html
from pipelines.runner import run
from pipelines.seed import seed

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 11, 22)
ROWS = 3_000

# Every column of the reference dataset that holds a personal value or free text.
PERSONAL_COLUMNS = {
    "accounts": ["email", "full_name", "phone", "signup_ip"],
    "teams": ["email"],
    "orders": ["email", "shipping_address", "billing_address", "payment_token"],
    "support_tickets": ["email", "serial_number", "body"],
    "newsletter_subscriptions": ["email"],
    "feedback": ["comment"],
    "uploaded_files": ["file_name", "storage_path"],
    "access_logs": ["ip"],
    "marketing_profiles": ["ad_id"],
}


# -- helpers shared with test_report_browser.py


def reference_policy(tmp: Path) -> tuple[Path, str, str]:
    """The reference policy pointed at a fresh store, vault and key under `tmp`."""
    spec = yaml.safe_load((ROOT / "policies" / "cloud3d.yaml").read_text())
    key = tmp / "pseudonym.key"
    key.write_text("ab" * 32 + "\n")
    key.chmod(0o600)
    store, vault = f"sqlite:///{tmp / 'store.db'}", f"sqlite:///{tmp / 'vault.db'}"
    spec.update(store=store, vault=vault)
    spec["pseudonymization"]["key"] = f"file:{key}"
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, store, vault


def seeded_policy(tmp: Path, rows: int = ROWS) -> tuple[Path, str, str]:
    policy, store, vault = reference_policy(tmp)
    seed(store, rows=rows, seed=0, as_of=AS_OF)
    return policy, store, vault


class Cells(HTMLParser):
    """The text of every table row, cell by cell: what a reader sees, whatever the markup."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(page: str) -> list[list[str]]:
    parser = Cells()
    parser.feed(page)
    return parser.rows


def row_for(page: str, first_cell: str, after: str | None = None) -> list[str]:
    """The first table row whose first cell is `first_cell` (after the heading `after`, if given)."""
    if after is not None:
        page = page[page.index(after):]
    for cells in table_rows(page):
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def n(value: int) -> str:
    return f"{value:,}"


# -- a hand-made report: every section, no database


def sample_report(**changes) -> dict:
    rep = {
        "run_id": "run-2026-11-22-20261122T000000Z-abc123", "as_of": "2026-11-22", "dry_run": False,
        "status": "succeeded", "policy_sha256": "f" * 64, "policy_file": "cloud3d.yaml",
        "started_at": "2026-11-22T01:00:00+00:00", "finished_at": "2026-11-22T01:02:05+00:00",
        "tables": {
            "access_logs": {"due": 4631, "erased": 4617, "anonymized": 0, "moved_to_vault": 14,
                            "due_by_retention": 3923, "due_by_subject_deletion": 979, "held": 14,
                            "released_erased": 3, "released_returned": 0},
            "accounts": {"due": 96, "erased": 0, "anonymized": 95, "moved_to_vault": 1, "due_by_retention": 0,
                         "due_by_subject_deletion": 96, "held": 1, "released_erased": 0, "released_returned": 2},
        },
        "vault": {"moved": 15, "released": 5},
        "aggregates": {"registration_stats": {"folded": 95}},
        "expectations": [{"name": "retention.access_logs", "success": True, "unexpected_count": 0},
                         {"name": "ledger.chain", "success": True, "unexpected_count": 0}],
        "ledger": {"entries": 20, "head": "9" * 64, "verified": True, "total_entries": 41},
        "rules": {"access_logs": {"retention": "90 days from ts", "when_expired": "erase",
                                  "when_subject_deleted": "erase"},
                  "accounts": {"retention": None, "when_expired": None, "when_subject_deleted": "anonymize"}},
        "holds": [{"hold_id": "1", "case_ref": "LIT-2025-0173", "rows_in_store": 0, "rows_in_vault": 21},
                  {"hold_id": "3", "case_ref": "SEC-INC-2025-044", "rows_in_store": 9, "rows_in_vault": 2}],
        "pending_subjects": {"count": 2, "overdue": 1, "subjects": [
            {"deleted_on": "2026-02-02", "age_days": 293, "overdue": True, "reason": "held"},
            {"deleted_on": "2026-11-01", "age_days": 21, "overdue": False, "reason": "grace period"}]},
    }
    rep.update(changes)
    return rep


def test_run_page_shows_per_table_counts_and_why_rows_were_due():
    page = report_html.render_run(sample_report())
    # Table, due, retention ended, account deleted, erased, anonymized, moved to vault, released erased/returned
    assert row_for(page, "access_logs") == ["access_logs", "4,631", "3,923", "979", "4,617", "0", "14", "3", "0"]
    assert row_for(page, "accounts") == ["accounts", "96", "0", "96", "0", "95", "1", "0", "2"]
    assert row_for(page, "registration_stats") == ["registration_stats", "95"]


def test_run_page_shows_holds_checks_ledger_and_policy():
    page = report_html.render_run(sample_report(expectations=[
        {"name": "retention.access_logs", "success": False, "unexpected_count": 7},
        {"name": "ledger.chain", "success": True, "unexpected_count": 0}], status="failed"))
    assert row_for(page, "1") == ["1", "LIT-2025-0173", "0", "21"]
    assert row_for(page, "3") == ["3", "SEC-INC-2025-044", "9", "2"]
    failed = row_for(page, "retention.access_logs")
    assert "✗ Fail" in failed and failed[-1] == "7"
    assert "✓ Pass" in row_for(page, "ledger.chain")
    assert "1 of 2 checks failed" in page
    assert "9" * 64 in page and "✓ Verifies" in page
    assert "f" * 64 in page
    assert row_for(page, "access_logs", after='id="policy"')[1] == "90 days from ts"


def test_dry_run_page_says_nothing_was_changed():
    page = report_html.render_run(sample_report(dry_run=True, expectations=[]))
    assert "Dry run — nothing was changed." in page
    assert "to erase" in page
    assert "Dry run — nothing" not in report_html.render_run(sample_report())


def test_error_report_with_fewer_keys_renders_an_error_banner():
    rep = {"run_id": "run-x", "as_of": "2026-11-22", "dry_run": False, "status": "error", "policy_sha256": "a" * 64,
           "started_at": "2026-11-22T01:00:00+00:00", "finished_at": "2026-11-22T01:00:03+00:00",
           "error": "OperationalError during the run; see the logs of run run-x",
           "tables": {}, "vault": {"moved": 0, "released": 0}, "aggregates": {}, "expectations": [],
           "ledger": {"entries": 0, "head": "0" * 64, "verified": True, "total_entries": 0}}
    page = report_html.render_run(rep)
    assert "This run stopped with an error." in page
    assert "OperationalError during the run" in page
    assert 'role="alert"' in page


def test_ledger_that_does_not_verify_is_flagged_with_its_first_bad_entry():
    rep = sample_report(ledger={"entries": 3, "head": "1" * 64, "verified": False, "total_entries": 9,
                                "first_bad_entry": 4}, status="failed")
    page = report_html.render_run(rep)
    assert "✗ Broken" in page and "at entry 4" in page


def test_pages_are_self_contained_and_fetch_nothing():
    for page in (report_html.render_run(sample_report()), report_html.render_index([sample_report()])):
        assert "<script" not in page.lower()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
        assert "@import" not in page and "url(" not in page
        assert "default-src 'none'" in page  # the Content-Security-Policy forbids any fetch
        assert "<svg" in page and 'role="img"' in page


def test_values_from_the_report_are_escaped_not_read_as_markup():
    hostile = '<img src=x onerror=alert(1)>'
    rep = sample_report(holds=[{"hold_id": "7", "case_ref": hostile, "rows_in_store": 1, "rows_in_vault": 0}],
                        tables={hostile: sample_report()["tables"]["accounts"]})
    for page in (report_html.render_run(rep), report_html.render_index([rep])):
        assert hostile not in page
        assert html.escape(hostile) in page or html.escape(hostile, quote=False) in page


def test_index_lists_runs_newest_first_with_links_and_trends(tmp_path):
    older = sample_report(run_id="run-a", as_of="2026-10-01", started_at="2026-11-22T00:00:01+00:00")
    newer = sample_report(run_id="run-b", as_of="2026-11-22", started_at="2026-11-22T00:00:02+00:00",
                          status="failed")
    dry = sample_report(run_id="run-c", as_of="2026-11-01", dry_run=True, started_at="2026-11-22T00:00:03+00:00")
    for rep in (older, newer, dry):
        report.write_private(tmp_path / f"{rep['run_id']}.json", json.dumps(rep))
    path = report_html.write_index(tmp_path)
    assert path == tmp_path / "index.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    page = path.read_text()
    runs = [r for r in table_rows(page[page.index('id="runs"'):]) if r and re.match(r"\d{4}-", r[0])]
    assert [r[0] for r in runs] == ["2026-11-22", "2026-11-01", "2026-10-01"]
    assert runs[0][1] == "Failed" and runs[1][1] == "Succeeded Dry run"
    assert 'href="run-a.html"' in page and 'href="run-b.html"' in page and 'href="run-c.html"' in page
    # One trend chart per table, over the two real runs (the dry run changed nothing).
    assert page.count('<title id="trend-') == 2
    assert "2026-10-01: 4,631; 2026-11-22: 4,631" in page


def test_index_flags_overdue_deleted_accounts_with_their_reason():
    page = report_html.render_index([sample_report()])
    assert row_for(page, "2026-02-02", after='id="overdue"') == ["2026-02-02", "293", "Overdue", "held"]
    assert "overdue: held" in page


@pytest.mark.parametrize("text", [
    '{"run_id": "x", "as_of":',  # truncated mid-write
    '{"name": "dashboard", "version": "1.0"}',  # another tool's JSON
    '{"run_id": 7, "as_of": "2026-01-01"}',  # a run id that is no string: sorting failed
    '{"run_id": null, "as_of": null}',
    '{"run_id": "r", "as_of": "2026-01-01", "started_at": 5}',  # a later format's timestamp
    '{"run_id": "r", "as_of": "2026-01-01", "tables": [1, 2], "expectations": {"a": 1}}',
    '{"run_id": "r", "as_of": "2026-01-01", "tables": {"t": null}}',
    '{"run_id": "r", "as_of": "2026-01-01", "aggregates": {"a": [1]}, "rules": {"t": "erase"}}',
    '{"run_id": "r", "as_of": "2026-01-01", "pending_subjects": {"subjects": 3}}',
])
def test_index_leaves_out_json_files_that_are_no_run_report(tmp_path, text, caplog):
    rep = sample_report()
    report.write_private(tmp_path / f"{rep['run_id']}.json", json.dumps(rep))
    (tmp_path / "other.json").write_text(text)
    page = report_html.write_index(tmp_path).read_text()
    assert 'href="run-2026-11-22-20261122T000000Z-abc123.html"' in page
    if "subjects" not in text:
        assert "other.json" in caplog.text


def test_a_run_report_with_an_infinite_count_still_renders(tmp_path):
    rep = sample_report(tables={"t": {"due": 1e400, "erased": 1e400}})  # 1e400 in JSON reads as infinity
    report.write_private(tmp_path / "r.json", json.dumps(rep))
    assert "2026-11-22" in report_html.write_index(tmp_path).read_text()
    assert "—" in report_html.render_run(rep)


def test_a_run_writes_its_report_beside_json_files_that_are_no_run_report(tmp_path):
    (tmp_path / "other.json").write_text('{"run_id": "r", "as_of": "2026-01-01", "tables": [1, 2]}')
    path = report.write(sample_report(), tmp_path)
    assert path.exists() and (tmp_path / "index.html").exists()


def test_index_of_an_empty_directory_says_there_is_no_run_yet(tmp_path):
    page = report_html.write_index(tmp_path / "new").read_text()
    assert "No run report in this directory yet" in page


def test_report_command_refuses_a_directory_that_does_not_exist(tmp_path):
    """A mistyped --report-dir was created and given an empty index, as if no run had ever been reported."""
    from tests.support.stores import lethe

    missing = tmp_path / "repots"
    proc = lethe("report", "--report-dir", str(missing))
    assert proc.returncode == 2 and "no report directory at" in proc.stderr and not missing.exists()
    report.write_private(tmp_path / "r.json", json.dumps(sample_report()))
    ok = lethe("report", "--report-dir", str(tmp_path))
    assert ok.returncode == 0 and (tmp_path / "index.html").exists()


# -- real runs


def personal_values(store: str) -> set[str]:
    """Every personal and free-text value of the seeded tables (shorter ones could match page words)."""
    engine = sa.create_engine(store)
    values: set[str] = set()
    try:
        with engine.connect() as conn:
            for table, columns in PERSONAL_COLUMNS.items():
                for column in columns:
                    rows = conn.execute(sa.text(f'SELECT "{column}" FROM "{table}"'))  # test-only, fixed names
                    values.update(v for (v,) in rows if isinstance(v, str) and len(v) >= 6)
    finally:
        engine.dispose()
    return values


def spellings(value: str) -> set[str]:
    """A value as it would appear raw, HTML-escaped or JSON-escaped."""
    return {value, html.escape(value), html.escape(value, quote=False), json.dumps(value)[1:-1]}


def test_no_personal_value_appears_in_any_report_file(tmp_path):
    policy, store, vault = seeded_policy(tmp_path)
    before = personal_values(store)
    assert len(before) > 1000  # the scan below means something
    report_dir = tmp_path / "reports"
    run(policy, AS_OF, dry_run=True, report_dir=report_dir, store=store, vault=vault)
    result = run(policy, AS_OF, report_dir=report_dir, store=store, vault=vault)
    assert result.report["tables"]["accounts"]["anonymized"] > 0
    # Pseudonyms and other values the run wrote are personal data too.
    after = personal_values(store) - before
    assert after

    files = sorted(p for p in report_dir.iterdir() if p.is_file())
    assert {p.suffix for p in files} == {".json", ".html"} and len(files) == 5  # 2 runs x 2 + index
    for path in files:
        text = path.read_text(encoding="utf-8")
        leaked = sorted(v for v in before | after if any(s in text for s in spellings(v)))
        assert not leaked, f"{path.name} contains {len(leaked)} personal values"


def overdue_held(page: str) -> list[list[str]]:
    overdue = [r for r in table_rows(page[page.index('id="overdue"'):]) if len(r) == 4 and r[2] == "Overdue"]
    return [r for r in overdue if r[3] == "held"]


@pytest.mark.parametrize("dry_run", [True, False], ids=["plan", "run"])
def test_index_shows_a_deleted_account_held_past_a_month_as_overdue_held(tmp_path, dry_run):
    # The seed places a subject-only hold on an account deleted long before AS_OF: a plan leaves it in
    # the store, a real run moves it to the vault; either way it is still not erased.
    policy, store, vault = seeded_policy(tmp_path)
    report_dir = tmp_path / "reports"
    run(policy, AS_OF, dry_run=dry_run, report_dir=report_dir, store=store, vault=vault)
    page = (report_dir / "index.html").read_text()
    held = overdue_held(page)
    assert len(held) == 1
    assert int(held[0][1].replace(",", "")) > 30
    assert "overdue: held" in page


def test_checks_are_described_in_words_with_failures_first():
    names = ["retention.orders", "form.accounts.email.no_ip", "aggregate.registration_stats.min_group_size",
             "vault.orders", "ledger.chain", "something.new"]
    rep = sample_report(status="failed", expectations=[
        {"name": name, "success": name != "aggregate.registration_stats.min_group_size",
         "unexpected_count": 0 if name != "aggregate.registration_stats.min_group_size" else 59}
        for name in names])
    page = report_html.render_run(rep)
    checks = [r for r in table_rows(page[page.index('id="checks"'):]) if r and r[0] in names]
    assert [r[0] for r in checks][0] == "aggregate.registration_stats.min_group_size"
    described = {r[0]: r[1] for r in checks}
    assert described["form.accounts.email.no_ip"] == "Anonymized values in accounts.email contain no full IP address"
    assert described["aggregate.registration_stats.min_group_size"] == (
        "No group in registration_stats is smaller than the minimum group size")
    assert described["something.new"] == "something.new"  # an unknown check still shows its name
    assert "59 problems found" in page[:page.index('id="summary"')]  # named in the banner at the top


# -- the Airflow 3 plugin


@pytest.fixture
def plugin_client(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from pipelines import airflow_plugin

    monkeypatch.setenv("LETHE_REPORT_DIR", str(tmp_path))
    rep = sample_report()
    report.write(rep, tmp_path)
    (tmp_path.parent / "secret.txt").write_text("outside")
    app = airflow_plugin.create_app()
    return app, TestClient(app), rep


def test_plugin_serves_reports_only_to_authenticated_airflow_users(plugin_client):
    app, client, rep = plugin_client
    assert client.get("/").status_code == 401
    app.dependency_overrides[app.router.dependencies[0].dependency] = lambda: None  # a logged-in user
    index = client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert f'href="{rep["run_id"]}.html"' in index.text
    assert client.get(f"/{rep['run_id']}.html").status_code == 200
    assert client.get(f"/{rep['run_id']}.json").json()["run_id"] == rep["run_id"]
    for name in ("/..%2Fsecret.txt", "/../secret.txt", "/.index.html", "/missing.html", "/index.html.tmp"):
        assert client.get(name).status_code == 404, name


def test_plugin_declares_a_browse_menu_view_onto_the_index():
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    from pipelines.airflow_plugin import URL_PREFIX, LethePlugin

    LethePlugin.validate()
    (view,) = LethePlugin.external_views
    parsed = ExternalViewResponse(**view)
    assert parsed.href == f"{URL_PREFIX}/" and parsed.destination == "nav" and parsed.category == "browse"
    assert LethePlugin.fastapi_apps[0]["url_prefix"] == URL_PREFIX
