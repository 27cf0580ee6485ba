"""SQLite's cutoff comparison side by side: plain `julianday(ts) <= julianday(cutoff)` (rounds to the
millisecond) against `timestamps._sqlite_at_or_before` (exact to the microsecond), counting the due rows of
3,000,000 text timestamps, half of them due, three rounds.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sqlite_cutoff.py /tmp/scr/pred/t.db
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import sys
import time

import sqlalchemy as sa

from pipelines.timestamps import _sqlite_at_or_before

ROWS = 3_000_000
CUTOFF = "2025-07-01 00:00:00"


def seed(path: str) -> None:
    base, rnd = dt.datetime(2025, 1, 1), random.Random(1)
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE IF EXISTS t")
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TEXT)")
        stamps = ((base + dt.timedelta(seconds=rnd.randrange(365 * 86400), microseconds=rnd.randrange(10**6)))
                  .isoformat(sep=" ") for _ in range(ROWS))
        con.executemany("INSERT INTO t (ts) VALUES (?)", ((s,) for s in stamps))


def main(path: str) -> None:
    seed(path)
    engine = sa.create_engine(f"sqlite:///{path}")
    t = sa.Table("t", sa.MetaData(), autoload_with=engine)
    contenders = {"julianday <=": sa.func.julianday(t.c.ts) <= sa.func.julianday(CUTOFF),
                  "exact": _sqlite_at_or_before(t.c.ts, CUTOFF)}
    with engine.connect() as conn:
        for _ in range(3):
            for name, predicate in contenders.items():
                start = time.perf_counter()
                due = conn.execute(sa.select(sa.func.count()).where(predicate)).scalar()
                print(f"{name:13} {due:>10,} due {time.perf_counter() - start:6.3f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lethe_cutoff_bench.db")
