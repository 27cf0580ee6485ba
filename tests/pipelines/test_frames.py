"""A chunk read into pandas and written back in batches: every row once, each value on its own row."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from pipelines.frames import ROW_BATCH, read_rows, write_back

ROWS = 2 * ROW_BATCH + 345  # three read and write batches, the last one short


def test_a_chunk_larger_than_a_batch_reads_every_row_and_writes_each_value_to_its_own_row(store_url):
    engine = sa.create_engine(store_url)
    meta = sa.MetaData()
    people = sa.Table("people", meta, sa.Column("pid", sa.Integer, primary_key=True), sa.Column("email", sa.Text),
                      sa.Column("seen_at", sa.DateTime), sa.Column("score", sa.Float))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(people.insert(), [{"pid": i, "email": f"user{i}@example.org",
                                        "seen_at": dt.datetime(2020, 1, 1) + dt.timedelta(minutes=i),
                                        "score": i / 2} for i in range(1, ROWS + 100)])
    keys = list(range(ROWS + 99, 99, -1))  # the chunk's keys, in no particular order; rows 1-99 stay as they are
    try:
        with engine.begin() as conn:
            frame = read_rows(conn, people, "pid", keys, ["email", "seen_at"])
            assert len(frame) == ROWS and sorted(frame["pid"]) == sorted(keys)
            assert list(frame.columns) == ["pid", "email", "seen_at"]
            assert all(e == f"user{k}@example.org" for k, e in zip(frame["pid"], frame["email"], strict=True))
            # new values by position, as anonymize_rows computes them: missing ones become NULL
            email = pd.Series([None if k % 1000 == 0 else f"p{k}" for k in frame["pid"]], dtype=object)
            seen = pd.Series([pd.NaT if k % 7 == 0 else pd.Timestamp(2000, 1, 1) + pd.Timedelta(days=k)
                              for k in frame["pid"]])
            score = pd.Series([float("nan") if k % 3 == 0 else k * 10.0 for k in frame["pid"]])
            write_back(conn, people, "pid", list(frame["pid"]),
                       {"email": email, "seen_at": seen, "score": score})
        with engine.connect() as conn:
            stored = {r.pid: r for r in conn.execute(sa.select(people))}
    finally:
        engine.dispose()

    assert len(stored) == ROWS + 99
    for k in keys:
        row = stored[k]
        assert row.email == (None if k % 1000 == 0 else f"p{k}")
        assert row.seen_at == (None if k % 7 == 0 else dt.datetime(2000, 1, 1) + dt.timedelta(days=k))
        assert row.score == (None if k % 3 == 0 else k * 10.0)
    for k in range(1, 100):  # not in the chunk: untouched
        assert stored[k].email == f"user{k}@example.org" and stored[k].score == k / 2
