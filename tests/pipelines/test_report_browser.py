"""The report pages as a browser shows them: headless Chromium renders a real run's page and the index.

The DOM Chromium builds must carry the run's numbers, and the screenshots and the printed PDF are kept
under artifacts/ for a human to look at. CI installs Chromium (.ci/run); without it this fails, never skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.runner import run
from tests.pipelines.test_report_html import AS_OF, ROOT, n, row_for, seeded_policy, table_rows

ARTIFACTS = ROOT / "artifacts"


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail("headless Chromium is needed for the report browser test: "
                    "apt-get update && apt-get install -y chromium  (.ci/run does this in CI)")
    return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium_binary()
    profile = tmp_path_factory.mktemp("chromium-profile")

    def call(url: Path, *args: str) -> str:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *args, url.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
        return done.stdout

    return call


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[Path, dict]:
    """A report directory with a dry run and a real run of the reference policy; the real run's report."""
    tmp = tmp_path_factory.mktemp("browser")
    policy, store, vault = seeded_policy(tmp)
    report_dir = tmp / "reports"
    run(policy, AS_OF, dry_run=True, report_dir=report_dir, store=store, vault=vault)
    result = run(policy, AS_OF, report_dir=report_dir, store=store, vault=vault)
    return report_dir, result.report


def png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{path} is not a rendered page"
    return data


def test_run_page_in_chromium_shows_the_runs_numbers(browser, reports):
    report_dir, rep = reports
    page = report_dir / f"{rep['run_id']}.html"
    dom = browser(page, "--dump-dom")
    assert "</main>" in dom, "Chromium did not render the page"
    for name, t in rep["tables"].items():
        expected = [name, n(t["due"]), n(t["due_by_retention"]), n(t["due_by_subject_deletion"]), n(t["erased"]),
                    n(t["anonymized"]), n(t["moved_to_vault"]), n(t["released_erased"]), n(t["released_returned"])]
        assert row_for(dom, name) == expected
    assert rep["tables"]["access_logs"]["erased"] > 0
    for hold in rep["holds"]:
        assert row_for(dom, str(hold["hold_id"]), after='id="holds"')[1:] == [
            hold["case_ref"], n(hold["rows_in_store"]), n(hold["rows_in_vault"])]
    assert rep["ledger"]["head"] in dom and rep["policy_sha256"] in dom
    assert dom.count("✓ Pass") == len(rep["expectations"])
    assert "<svg" in dom and "<rect" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    browser(page, f"--screenshot={ARTIFACTS / 'run.png'}", "--window-size=1280,2000")
    png(ARTIFACTS / "run.png")
    browser(page, f"--print-to-pdf={ARTIFACTS / 'run.pdf'}", "--no-pdf-header-footer")
    assert (ARTIFACTS / "run.pdf").read_bytes()[:5] == b"%PDF-"


def test_index_in_chromium_lists_both_runs_and_draws_the_trends(browser, reports):
    report_dir, rep = reports
    dom = browser(report_dir / "index.html", "--dump-dom")
    runs = [r for r in table_rows(dom[dom.index('id="runs"'):]) if r and r[0] == rep["as_of"]]
    assert len(runs) == 2
    assert sorted(r[1] for r in runs) == ["Succeeded", "Succeeded Dry run"]
    real = next(r for r in runs if r[1] == "Succeeded")
    totals = {k: sum(t[k] for t in rep["tables"].values()) for k in ("due", "erased", "anonymized", "moved_to_vault")}
    assert real[3:7] == [n(totals["due"]), n(totals["erased"]), n(totals["anonymized"]), n(totals["moved_to_vault"])]
    assert f'href="{rep["run_id"]}.html"' in dom
    assert dom.count('<title id="trend-') == len(rep["tables"])
    # The index reads deleted accounts from the latest run's report.
    pending = json.loads((report_dir / f"{rep['run_id']}.json").read_text())["pending_subjects"]
    assert f"{n(pending['count'])}</span><span class=\"label\">deleted accounts waiting" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    browser(report_dir / "index.html", f"--screenshot={ARTIFACTS / 'index.png'}", "--window-size=1280,2000")
    png(ARTIFACTS / "index.png")
