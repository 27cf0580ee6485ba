"""A subject whose own row Lethe erases inside the grace period still has its other rows processed after it.

The subjects table's `deleted_at` is how discovery knows a subject was deleted; erasing that row before
the grace period is over (by retention, or by a vault release) leaves a tombstone in its place.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from pipelines import steps
from pipelines.context import build
from pipelines.runner import run
from tests.support.stores import frame, snapshot

D = dt.date(2026, 6, 1)
DAY = dt.timedelta(days=1)
MIDNIGHT = dt.datetime.combine(D, dt.time(), tzinfo=dt.UTC)

POLICY = """
version: 1
pseudonymization: {key: env:LETHE_PSEUDONYM_KEY, key_id: t1}
subjects: {table: people, id: pid, deleted_at: deleted_at, erase_after: 30d}
tables:
  people:
    key: pid
    subject: pid
    retain: {for: 1y, from: last_login}
    when_expired: erase
    when_subject_deleted: erase
  notes:
    key: id
    subject: pid
    when_subject_deleted: erase
"""
GONE, PAST, LIVE = 1, 2, 3  # deleted 10 days before D, inside the grace; deleted 40 days before D; live


def _exec(url: str, sql: str, params: list[dict] | dict | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params or {})
    engine.dispose()


def _tombstones(url: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT subject_key, deleted_at FROM lethe_subject_tombstones")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


@pytest.fixture
def store(store_url, pseudonym_key, tmp_path):
    engine = sa.create_engine(store_url)
    meta = sa.MetaData()
    # an integer id (the tombstone's text is cast back to it) and a zoned deleted_at (timestamptz on PostgreSQL)
    sa.Table("people", meta, sa.Column("pid", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("last_login", sa.DateTime), sa.Column("deleted_at", sa.DateTime(timezone=True)))
    sa.Table("notes", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("pid", sa.Integer), sa.Column("body", sa.String(40)))
    meta.create_all(engine)
    engine.dispose()
    old_login = dt.datetime(2024, 1, 1)  # due by retention at D
    _exec(store_url, "INSERT INTO people (pid, last_login, deleted_at) VALUES (:p, :l, :d)", [
        {"p": GONE, "l": old_login, "d": MIDNIGHT - 10 * DAY},
        {"p": PAST, "l": dt.datetime(2026, 4, 1), "d": MIDNIGHT - 40 * DAY},
        {"p": LIVE, "l": dt.datetime(2026, 5, 1), "d": None},
    ])
    _exec(store_url, "INSERT INTO notes (id, pid, body) VALUES (:i, :p, :b)", [
        {"i": 1, "p": GONE, "b": "g1"}, {"i": 2, "p": GONE, "b": "g2"}, {"i": 3, "p": GONE, "b": "g3"},
        {"i": 4, "p": PAST, "b": "p1"}, {"i": 5, "p": PAST, "b": "p2"},
        {"i": 6, "p": LIVE, "b": "l1"}, {"i": 7, "p": LIVE, "b": "l2"},
    ])
    policy = tmp_path / "tombstones.yaml"
    policy.write_text(POLICY)
    return store_url, policy


def _plan_and_run(url: str, policy, as_of: dt.date, reports) -> tuple[dict, dict]:
    planned = run(policy, as_of, dry_run=True, report_dir=reports, store=url).report
    ran = run(policy, as_of, report_dir=reports, store=url).report
    assert ran["status"] == "succeeded", ran["expectations"]
    return planned["tables"], ran["tables"]


def test_when_a_subject_row_is_erased_inside_its_grace_period_then_its_other_rows_fall_due_after_it(store, tmp_path):
    url, policy = store
    reports = tmp_path / "r"

    planned, ran = _plan_and_run(url, policy, D, reports)
    # GONE's row expired (retention) and PAST is past its grace: both rows go; only PAST's notes are due
    assert planned["people"]["erased"] == ran["people"]["erased"] == 2
    assert planned["notes"]["due"] == planned["notes"]["erased"] == ran["notes"]["erased"] == 2
    assert set(frame(url, "people").pid) == {LIVE}
    assert set(frame(url, "notes").id) == {1, 2, 3, 6, 7}
    ((key, deleted_at),) = _tombstones(url)  # GONE only: PAST's other rows were processed in this run
    assert key == str(GONE) and str(deleted_at).startswith("2026-05-22 00:00:00")

    # the last day inside the grace period: nothing due yet
    inside = run(policy, D + 19 * DAY, dry_run=True, report_dir=reports, store=url).report["tables"]
    assert inside["notes"]["due"] == 0

    planned, ran = _plan_and_run(url, policy, D + 21 * DAY, reports)
    assert planned["notes"]["due"] == planned["notes"]["due_by_subject_deletion"] == 3
    assert planned["notes"]["erased"] == ran["notes"]["erased"] == 3
    assert ran["people"]["erased"] == 0
    assert set(frame(url, "notes").id) == {6, 7}
    assert _tombstones(url) == []

    before = snapshot(url, ["people", "notes", "lethe_subject_tombstones", "lethe_anonymized"])
    again = run(policy, D + 21 * DAY, report_dir=reports, store=url).report
    assert again["status"] == "succeeded"
    assert all(t["due"] == t["erased"] == 0 for t in again["tables"].values())
    assert snapshot(url, ["people", "notes", "lethe_subject_tombstones", "lethe_anonymized"]) == before
    live_notes = frame(url, "notes").set_index("id")
    assert live_notes.pid.tolist() == [LIVE, LIVE] and live_notes.body.tolist() == ["l1", "l2"]


def _anonymizing_policy(tmp_path, redacted_column: str):
    """POLICY, but the people table's retention anonymizes its rows, redacting `redacted_column`."""
    path = tmp_path / f"anonymizes_{redacted_column}.yaml"
    path.write_text(POLICY.replace("    when_expired: erase\n    when_subject_deleted: erase\n  notes:",
                                   "    when_expired: anonymize\n    when_subject_deleted: erase\n"
                                   f"    columns: {{{redacted_column}: redact}}\n  notes:"))
    return path


def test_a_subject_row_anonymized_inside_its_grace_period_with_its_deleted_at_keeps_the_deletion(store, tmp_path):
    """An operator on deleted_at (here redact) takes the deletion record with it, as erasing the row does."""
    url, _ = store
    policy = _anonymizing_policy(tmp_path, "deleted_at")
    reports = tmp_path / "r"

    planned, ran = _plan_and_run(url, policy, D, reports)
    assert planned["people"]["anonymized"] == ran["people"]["anonymized"] == 1  # GONE, by retention
    assert ran["people"]["erased"] == 1  # PAST, past its grace period
    people = frame(url, "people").set_index("pid")
    assert set(people.index) == {GONE, LIVE} and people.deleted_at.isna().all()  # GONE's deletion redacted
    assert [k for k, _ in _tombstones(url)] == [str(GONE)]
    assert set(frame(url, "notes").id) == {1, 2, 3, 6, 7}

    planned, ran = _plan_and_run(url, policy, D + 21 * DAY, reports)
    assert planned["notes"]["due_by_subject_deletion"] == ran["notes"]["erased"] == 3
    assert planned["people"]["due_by_subject_deletion"] == ran["people"]["erased"] == 1  # GONE's own row too
    assert set(frame(url, "people").pid) == {LIVE}
    assert set(frame(url, "notes").id) == {6, 7}
    assert _tombstones(url) == []


def test_a_subject_row_anonymized_with_its_deleted_at_kept_needs_no_tombstone(store, tmp_path):
    url, _ = store
    policy = _anonymizing_policy(tmp_path, "last_login")
    run(policy, D, report_dir=tmp_path / "r", store=url)
    assert _tombstones(url) == []  # the row itself still says when GONE was deleted
    planned, ran = _plan_and_run(url, policy, D + 21 * DAY, tmp_path / "r")
    assert planned["notes"]["erased"] == ran["notes"]["erased"] == 3
    assert set(frame(url, "notes").id) == {6, 7}


def test_a_dry_run_writes_no_tombstone(store, tmp_path):
    url, policy = store
    run(policy, D, dry_run=True, report_dir=tmp_path / "r", store=url)
    engine = sa.create_engine(url)
    assert not sa.inspect(engine).has_table("lethe_subject_tombstones")
    engine.dispose()


HELD_POLICY = POLICY.replace("tables:\n", "legal_holds: {table: legal_holds}\ntables:\n", 1)


def _held_store(store: str, vault: str, policy_text: str, tmp_path) -> tuple[object, dict]:
    """An expired row of a subject deleted 10 days before D, held; a live subject; their notes."""
    _exec(store, "CREATE TABLE people (pid VARCHAR(20) PRIMARY KEY, last_login TIMESTAMP, deleted_at TIMESTAMP)")
    _exec(store, "CREATE TABLE notes (id INTEGER PRIMARY KEY, pid VARCHAR(20), body VARCHAR(40))")
    _exec(store, "CREATE TABLE legal_holds (hold_id INTEGER PRIMARY KEY, subject_id VARCHAR(20), "
                 "table_name VARCHAR(40), record_key VARCHAR(40), case_ref VARCHAR(40), placed_at TIMESTAMP, "
                 "released_at TIMESTAMP)")
    _exec(store, "INSERT INTO people VALUES ('p-held', '2024-01-01 00:00:00', '2026-05-22 00:00:00'), "
                 "('p-live', '2026-05-01 00:00:00', NULL)")
    _exec(store, "INSERT INTO notes VALUES (1, 'p-held', 'h1'), (2, 'p-held', 'h2'), (3, 'p-live', 'l1')")
    _exec(store, "INSERT INTO legal_holds VALUES (1, NULL, 'people', 'p-held', 'CASE-1', '2026-01-01 00:00:00', NULL)")
    policy = tmp_path / "held.yaml"
    policy.write_text(policy_text)
    return policy, {"report_dir": tmp_path / "r", "store": store, "vault": vault}


def _released_after_moving(policy, where: dict) -> dict:
    """Run at D (the hold moves p-held's expired row to the vault), release the hold, run at D+1."""
    first = run(policy, D, **where).report
    assert first["status"] == "succeeded" and first["tables"]["people"]["moved_to_vault"] == 1
    _exec(where["store"], "UPDATE legal_holds SET released_at = '2026-01-02 00:00:00'")
    released = run(policy, D + DAY, **where).report
    assert released["status"] == "succeeded", released["expectations"]
    assert frame(where["vault"], "people").empty
    assert released["tables"]["notes"]["erased"] == 0  # still inside the grace period
    assert [k for k, _ in _tombstones(where["store"])] == ["p-held"]
    return released["tables"]


def _notes_fall_due_after_the_grace_period(policy, where: dict) -> dict:
    planned = run(policy, D + 21 * DAY, dry_run=True, **where).report["tables"]
    ran = run(policy, D + 21 * DAY, **where).report
    assert ran["status"] == "succeeded", ran["expectations"]
    assert planned["notes"]["due_by_subject_deletion"] == planned["notes"]["erased"] == 2
    assert ran["tables"]["notes"]["erased"] == 2
    assert frame(where["store"], "notes").id.tolist() == [3]
    assert _tombstones(where["store"]) == []
    return ran["tables"]


def test_when_a_held_subject_row_is_released_inside_its_grace_period_then_its_other_rows_fall_due_after_it(
        store_and_vault, pseudonym_key, tmp_path):
    """The hold moves the expired row, and the store's record of the deletion, to the vault; releasing it
    erases the vault row, and the tombstone takes over as the record."""
    policy, where = _held_store(*store_and_vault, HELD_POLICY, tmp_path)
    assert _released_after_moving(policy, where)["people"]["released_erased"] == 1
    _notes_fall_due_after_the_grace_period(policy, where)


def test_a_held_subject_row_returned_anonymized_with_its_deleted_at_keeps_the_deletion(
        store_and_vault, pseudonym_key, tmp_path):
    """A release that returns the row anonymized by an operator on deleted_at (here redact) also takes the
    record of the deletion with it; the tombstone keeps it, and the returned row itself is erased later."""
    anonymizing = HELD_POLICY.replace("    when_expired: erase\n    when_subject_deleted: erase\n  notes:",
                                      "    when_expired: anonymize\n    when_subject_deleted: erase\n"
                                      "    columns: {deleted_at: redact}\n  notes:")
    policy, where = _held_store(*store_and_vault, anonymizing, tmp_path)
    assert _released_after_moving(policy, where)["people"]["released_returned"] == 1
    returned = frame(where["store"], "people").set_index("pid")
    assert set(returned.index) == {"p-held", "p-live"} and returned.deleted_at.isna().all()
    ran = _notes_fall_due_after_the_grace_period(policy, where)
    assert ran["people"]["erased"] == 1  # the returned row, as a deleted subject's
    assert frame(where["store"], "people").pid.tolist() == ["p-live"]


def test_the_subjects_phase_gets_a_task_to_forget_tombstones_when_no_subject_row_is_due(store, tmp_path):
    """The DAG maps one apply task per key range of due rows; with tombstones past the grace period and no
    subjects row due, the subjects table still gets one (open) range, whose apply forgets them."""
    url, policy = store
    run(policy, D, report_dir=tmp_path / "r", store=url)

    def subjects_partitions() -> list[list]:
        ctx = build(policy, D + 21 * DAY, store=url)
        try:
            return steps.partitions(ctx, "people", 4)
        finally:
            ctx.dispose()

    assert subjects_partitions() == [[None, None]]
    run(policy, D + 21 * DAY, report_dir=tmp_path / "r", store=url)
    assert subjects_partitions() == []


def test_two_chunks_tombstoning_the_same_subject_at_once_both_commit(pg, pseudonym_key, tmp_path):
    """A subject id need not be unique in the subjects table: two concurrent range chunks may erase two rows
    of one subject inside its grace period. The second waits for the first's tombstone, then skips it."""
    import threading

    from pipelines import tombstones

    url = pg.url(pg.create_database("tomb"))
    _exec(url, "CREATE TABLE people (rid INTEGER PRIMARY KEY, pid INTEGER, last_login TIMESTAMP, "
               "deleted_at TIMESTAMP)")
    _exec(url, "INSERT INTO people VALUES (1, 7, '2024-01-01', '2026-05-22'), (2, 7, '2024-01-01', '2026-05-22')")
    policy = tmp_path / "shared_id.yaml"
    policy.write_text(POLICY.replace("    key: pid\n    subject: pid\n", "    key: rid\n    subject: pid\n", 1)
                      .split("  notes:")[0])
    ctx = build(policy, D, store=url)
    tombstones.ensure(ctx.store)
    people = ctx.tables["people"]
    second: list[object] = []

    def erase_second_row() -> None:
        try:
            with ctx.store.begin() as conn:
                second.append(tombstones.record_lost(conn, ctx, "people", people.c.rid == 2))
        except Exception as exc:  # noqa: BLE001 - asserted below
            second.append(exc)

    try:
        with ctx.store.begin() as conn:
            assert tombstones.record_lost(conn, ctx, "people", people.c.rid == 1) == 1
            waiter = threading.Thread(target=erase_second_row)
            waiter.start()
            with ctx.store.connect() as probe:  # the second chunk waits on the first one's uncommitted tombstone
                for _ in range(400):
                    waiting = probe.execute(sa.text("SELECT count(*) FROM pg_stat_activity "
                                                    "WHERE wait_event_type = 'Lock'")).scalar()
                    probe.rollback()  # pg_stat_activity is a snapshot kept until the transaction ends
                    if waiting:
                        break
                    threading.Event().wait(0.05)
                else:
                    pytest.fail(f"the second chunk never waited for the first: {second}")
        waiter.join(timeout=30)
        assert second == [0]
        assert [k for k, _ in _tombstones(url)] == ["7"]
    finally:
        ctx.dispose()
