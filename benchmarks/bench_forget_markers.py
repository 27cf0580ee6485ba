"""What forgetting deleted rows' markers costs each run, for a table keyed by email (a text key).

Seeds `members` (email primary key) with N rows due for anonymization, runs Lethe once so every row is
marked, then times `markers.forget_deleted` twice in one process: with no row deleted (what every run pays),
and after the application deleted a tenth of the rows. Usage:

    .venv/bin/python benchmarks/bench_forget_markers.py --rows 1000000 --store sqlite:////tmp/fm/store.db
    .venv/bin/python benchmarks/bench_forget_markers.py --rows 1000000 --store postgresql+psycopg://u:p@h/db

The store must be empty of a `members` table and of Lethe's tables. LETHE_PSEUDONYM_KEY is generated if unset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from pipelines import markers
from pipelines.runner import run
from pipelines.store import connect

POLICY = ("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: fm1}\ntables:\n"
          "  members: {key: email, retain: {for: 1y, from: joined}, when_expired: anonymize,\n"
          "            columns: {name: redact}}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    os.environ.setdefault("LETHE_PSEUDONYM_KEY", secrets.token_hex(32))
    engine = sa.create_engine(args.store)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE members (email VARCHAR(200) PRIMARY KEY, name TEXT, joined DATE)"))
        for start in range(0, args.rows, 100_000):
            conn.execute(sa.text("INSERT INTO members VALUES (:e, :n, :j)"),
                         [{"e": f"user{i:09d}@example.org", "n": f"Name {i}", "j": "2001-01-01"}
                          for i in range(start, min(args.rows, start + 100_000))])
    engine.dispose()
    work = Path(tempfile.mkdtemp(prefix="lethe-fm-"))
    (work / "p.yaml").write_text(POLICY)
    started = time.monotonic()
    result = run(work / "p.yaml", dt.date(2026, 11, 22), report_dir=work / "r", store=args.store)
    print(f"first run: {time.monotonic() - started:.1f} s, status {result.status}")
    store = connect(args.store)
    members = sa.Table("members", sa.MetaData(), autoload_with=store)
    for label, deleted in (("nothing deleted", 0), ("a tenth deleted", args.rows // 10)):
        if deleted:
            with store.begin() as conn:
                conn.execute(sa.text("DELETE FROM members WHERE email < :k"), {"k": f"user{deleted:09d}"})
        started = time.monotonic()
        forgotten = markers.forget_deleted(store, "members", members, "email")
        print(f"forget_deleted, {label}: {time.monotonic() - started:.2f} s, {forgotten:,} markers forgotten "
              f"of {args.rows:,}")
    store.dispose()


if __name__ == "__main__":
    main()
