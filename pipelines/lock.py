"""The store lock: runs never overlap on one store. A row in the store, not a file on one machine.

A run that was killed leaves its row behind; the next run takes over when the holder's process is
gone (same host) or its heartbeat is older than `stale_after`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import LockHeldError, LockLostError, step
from pipelines.store import enable_wal

_meta = sa.MetaData()
LOCK = sa.Table(
    "lethe_run_lock", _meta,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
)
STALE_AFTER = dt.timedelta(minutes=15)
HEARTBEAT_EVERY = 60.0  # seconds; far below STALE_AFTER, so a long step never looks dead
log = logging.getLogger("lethe.lock")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(row, stale_after: dt.timedelta) -> bool:
    if row.host == socket.gethostname() and row.pid is not None and not _pid_alive(row.pid):
        return True
    return _now() - row.heartbeat_at > stale_after


def acquire(engine: Engine, run_id: str, pid: int | None = None, stale_after: dt.timedelta = STALE_AFTER) -> None:
    """Take the store for `run_id` (re-entrant for the same run); raise LockHeldError if another run has it.
    Any other failure (no right to create the lock table, say) leaves as the "lock" step's StepFailedError.
    """
    with step("lock"):
        _take(engine, run_id, pid, stale_after)


def _take(engine: Engine, run_id: str, pid: int | None, stale_after: dt.timedelta) -> None:
    enable_wal(engine)
    _meta.create_all(engine, tables=[LOCK])
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(LOCK).where(LOCK.c.name == "store")).first()
            values = {"run_id": run_id, "host": socket.gethostname(), "pid": pid, "heartbeat_at": _now()}
            if row is None:
                conn.execute(LOCK.insert().values(name="store", acquired_at=_now(), **values))
            elif row.run_id == run_id or _stale(row, stale_after):
                taken = conn.execute(LOCK.update().where(LOCK.c.name == "store", LOCK.c.run_id == row.run_id)
                                     .values(acquired_at=_now(), **values)).rowcount
                if taken != 1:  # another run took the lock over between our read and our update
                    raise LockHeldError("another Lethe run took the store over at the same moment; runs never "
                                        "overlap")
            else:
                raise LockHeldError(
                    f"another Lethe run ({row.run_id}, on {row.host}, since {row.acquired_at:%Y-%m-%d %H:%M:%S} "
                    "UTC) is working on this store; runs never overlap. Wait for it to finish. If it died, the "
                    f"next run takes the lock over: at once on {row.host} (its process is gone), from anywhere "
                    f"{int(stale_after.total_seconds() // 60)} minutes after its last heartbeat")
    except sa.exc.IntegrityError:
        raise LockHeldError("another Lethe run took the store at the same moment; runs never overlap") from None


def heartbeat(engine: Engine, run_id: str) -> None:
    """Refresh `run_id`'s lock; LockLostError if another run has taken the store over meanwhile."""
    with engine.begin() as conn:
        kept = conn.execute(LOCK.update().where(LOCK.c.name == "store", LOCK.c.run_id == run_id)
                            .values(heartbeat_at=_now())).rowcount
    if kept != 1:
        minutes = int(STALE_AFTER.total_seconds() // 60)
        raise LockLostError(
            f"run {run_id} lost the store lock: another run took it over after {minutes} minutes without a "
            "heartbeat from this one (was its process suspended?). It stopped so that runs never overlap; what "
            "it committed stays done, and the run holding the store now completes the work")


@contextlib.contextmanager
def heartbeating(engine: Engine, run_id: str, every: float = HEARTBEAT_EVERY) -> Iterator[None]:
    """Heartbeat `run_id`'s lock from a thread while the body runs, so that a long step (a plan or a
    verification over a large store, a task of the DAG) never looks dead to a run waiting on another host.
    A beat that finds the lock taken over stops beating; the work notices at its next `heartbeat`.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                heartbeat(engine, run_id)
            except LockLostError as exc:
                log.error("%s", exc)
                return
            except Exception as exc:  # a missed beat is not fatal: the next one, or the work's own, retries
                log.warning("lock heartbeat for %s failed: %s", run_id, type(exc).__name__)

    beater = threading.Thread(target=beat, name="lethe-heartbeat", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join(timeout=5)


def release(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(LOCK.delete().where(LOCK.c.name == "store", LOCK.c.run_id == run_id))


def holder(engine: Engine) -> str | None:
    if not sa.inspect(engine).has_table("lethe_run_lock"):
        return None
    with engine.connect() as conn:
        return conn.execute(sa.select(LOCK.c.run_id).where(LOCK.c.name == "store")).scalar()
