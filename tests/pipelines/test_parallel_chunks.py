"""Concurrent chunk transactions (`--workers`): the same rows, the same ledger digests, as one worker."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from pipelines.apply import concurrently, range_chunk_size
from pipelines.seed import seed
from tests.support.stores import REFERENCE_POLICY, lethe, snapshot, user_tables

AS_OF = dt.date(2026, 11, 22)


def test_chunks_really_run_at_once_up_to_the_worker_count():
    barrier = threading.Barrier(3, timeout=10)  # broken unless three chunks are in flight together
    running, peak, guard = 0, 0, threading.Lock()

    def work(item: int) -> int:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        if item < 3:
            barrier.wait()
        with guard:
            running -= 1
        return item

    assert sorted(concurrently(work, iter(range(10)), workers=3)) == list(range(10))
    assert peak == 3


def test_a_failed_chunk_stops_new_chunks_and_is_raised():
    started = []

    def work(item: int) -> int:
        started.append(item)
        if item == 1:
            raise RuntimeError("chunk 1 failed")
        return item

    with pytest.raises(RuntimeError, match="chunk 1 failed"):
        list(concurrently(work, iter(range(100)), workers=2))
    assert len(started) < 10, "chunks kept starting after one failed"


def test_one_worker_runs_in_order_on_the_calling_thread():
    threads = set()
    out = list(concurrently(lambda i: threads.add(threading.get_ident()) or i, iter(range(5)), workers=1))
    assert out == [0, 1, 2, 3, 4]
    assert threads == {threading.get_ident()}


@pytest.mark.parametrize(("chunk", "expected", "workers", "size"), [
    (100_000, 50_000, 2, 25_000),       # a table smaller than a chunk still keeps both workers busy
    (100_000, 3_770_000, 2, 100_000),   # a large table keeps the chunk size
    (100_000, 50_000, 1, 100_000),      # one worker: nothing to share
    (100_000, None, 4, 100_000),        # no plan count (a DAG partition)
    (100_000, 10, 4, 1_000),            # never below 1,000 rows a chunk ...
    (300, 10, 4, 300),                  # ... unless the chunk size itself is smaller
])
def test_range_chunks_share_a_small_table_between_the_workers(chunk, expected, workers, size):
    assert range_chunk_size(chunk, expected, workers) == size


def _ledger(url: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT table_name, action, row_count, keys_digest FROM lethe_ledger ORDER BY seq"))]
    finally:
        engine.dispose()


def test_four_workers_change_the_same_rows_as_one_with_the_same_ledger_digests(pg, pseudonym_key, tmp_path):
    stores = {workers: (pg.url(pg.create_database(f"w{workers}")), pg.url(pg.create_database(f"v{workers}")))
              for workers in (1, 4)}
    for store, _ in stores.values():
        seed(store, rows=4_000, seed=5, as_of=AS_OF)
    reports = {}
    for workers, (store, vault) in stores.items():
        done = lethe("run", "--policy", str(REFERENCE_POLICY), "--as-of", AS_OF.isoformat(), "--store", store,
                     "--vault", vault, "--report-dir", str(tmp_path / f"r{workers}"), "--workers", str(workers),
                     env={"LETHE_CHUNK_SIZE": "150"})  # many chunks per table, so four are in flight at once
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        reports[workers] = done.stdout
        verify = lethe("ledger", "verify", "--policy", str(REFERENCE_POLICY), "--store", store)
        assert verify.returncode == 0, verify.stderr

    (one, _), (four, _) = stores[1], stores[4]
    tables = user_tables(one)
    assert snapshot(one, tables) == snapshot(four, tables)
    serial, parallel = _ledger(one), _ledger(four)
    # The same key ranges, so the same chunks: every entry's rows and digest, in whatever order they committed.
    assert Counter(serial) == Counter(parallel)
    erased = sum(n for t, action, n, _ in serial if t == "access_logs" and action == "erase")
    assert erased > 4 * 150, "the dataset must give access_logs more chunks than workers"
