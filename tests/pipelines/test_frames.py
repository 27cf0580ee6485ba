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


def test_a_chunk_of_long_texts_for_a_pandas_operator_is_read_a_batch_bounded_in_bytes_at_a_time(
        store_url, pseudonym_key, tmp_path, monkeypatch):
    """`fake` runs in pandas, so a chunk read every due row's column at once: 100,000 support tickets with 100 KB
    bodies would be 10 GB. The chunk now reads a batch of them bounded in bytes at a time, in its transaction."""
    import tracemalloc

    from pipelines import steps
    from pipelines.context import build

    rows, size = 40, 250_000
    engine = sa.create_engine(store_url)
    meta = sa.MetaData()
    tickets = sa.Table("support_tickets", meta, sa.Column("ticket_id", sa.Integer, primary_key=True),
                       sa.Column("body", sa.Text), sa.Column("closed", sa.DateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(tickets.insert(), [{"ticket_id": i, "body": f"ticket {i}: " + "call me on 0170 1234567. " * (
            size // 25), "closed": dt.datetime(2020, 1, 1)} for i in range(rows)])
    policy = tmp_path / "tickets.yaml"
    policy.write_text("version: 1\npseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: k1}\ntables:\n"
                      "  support_tickets:\n    key: ticket_id\n    retain: {for: 1y, from: closed}\n"
                      "    when_expired: anonymize\n    columns:\n      body: {fake: paragraph}\n")
    monkeypatch.setattr("pipelines.widths.BATCH_BYTES", 2 * size)
    ctx = build(policy, dt.date(2026, 6, 1), store=store_url)
    steps.prepare_store(ctx)
    tracemalloc.start()
    try:
        applied = steps.apply(ctx, "support_tickets")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        ctx.dispose()

    assert applied["anonymized"] == rows
    with engine.connect() as conn:
        bodies = conn.execute(sa.select(tickets.c.body)).scalars().all()
    engine.dispose()
    assert len(bodies) == rows and all(len(b) < 2_000 and "1234567" not in b for b in bodies)
    assert peak < rows * size / 2, peak
