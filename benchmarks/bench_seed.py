"""How fast `lethe seed` fills a store: wall time and rows per second on SQLite and PostgreSQL.

Run from the project root:
    .venv/bin/python benchmarks/bench_seed.py                      # 1M rows, SQLite and PostgreSQL
    .venv/bin/python benchmarks/bench_seed.py --rows 10000000 --backend sqlite
PostgreSQL is a throwaway server from tests/support/pgserver.py (fsync off, like the test suite).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.seed import seed  # noqa: E402


def _machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.machine()}, Python " \
           f"{platform.python_version()}"


def _run(label: str, url: str, rows: int, progress: bool) -> None:
    start = time.perf_counter()
    counts = seed(url, rows=rows, seed=0, as_of=dt.date(2026, 3, 1), progress=progress)
    elapsed = time.perf_counter() - start
    total = sum(counts.values())
    print(f"{label:<11} rows={total:>11,}  time={elapsed:8.1f} s  rate={total / elapsed:>10,.0f} rows/s",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    print(_machine())
    with tempfile.TemporaryDirectory(prefix="lethe-bench-") as tmp:
        if args.backend in ("sqlite", "both"):
            path = Path(tmp) / "store.db"
            _run("sqlite", f"sqlite:///{path}", args.rows, args.progress)
            print(f"{'':<11} file={path.stat().st_size / 2**20:,.0f} MiB")
        if args.backend in ("postgresql", "both"):
            from tests.support import pgserver

            server = pgserver.start()
            try:
                _run("postgresql", server.url(server.create_database("bench")), args.rows, args.progress)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
