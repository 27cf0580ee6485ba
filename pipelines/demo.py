"""`lethe demo`: seed the embedded default, run the reference policy as of today, print the report."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from pipelines.policy import load_policy

POLICY = Path("policies/cloud3d.yaml")
DEMO_ROWS = 20_000


def ensure_key_file(path: Path) -> None:
    """A random key on first use, owner-only: the demo never relies on a built-in key."""
    if path.exists() and path.read_text().strip():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def _remove_sqlite(path: Path) -> None:
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        part.unlink(missing_ok=True)


def demo(policy_path: Path = POLICY, report_dir: str = "reports") -> int:
    from pipelines.runner import run
    from pipelines.seed import seed

    policy = load_policy(policy_path)
    key_ref = policy.pseudonymization.key
    if key_ref.startswith("file:"):
        ensure_key_file(Path(key_ref.removeprefix("file:")))
    today = dt.datetime.now(dt.UTC).date()
    store = os.environ.get("LETHE_STORE_URL") or policy.store
    vault = os.environ.get("LETHE_VAULT_URL") or policy.vault
    # A fresh embedded store and vault each time: re-seeding alone would keep Lethe's markers, tombstones and
    # ledger of the last demo, which would take the new rows (same keys) for ones already anonymized.
    for url in (store, vault):
        if url and url.startswith("sqlite:///"):
            _remove_sqlite(Path(url.removeprefix("sqlite:///")))
    counts = seed(store, rows=DEMO_ROWS, seed=0, as_of=today, replace=True)
    print(f"seeded {sum(counts.values())} rows into {store}")
    result = run(policy_path, today, report_dir=report_dir, store=store, vault=vault)
    html = result.report_path.with_suffix(".html") if result.report_path else None
    print(f"run {result.report['run_id']}: {result.status}")
    print(f"report: {html if html and html.exists() else result.report_path}")
    index = Path(report_dir) / "index.html"
    if index.exists():
        print(f"index:  {index}")
    return result.exit_code
