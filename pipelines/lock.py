"""The store lock: runs never overlap on one store. A row in the store, not a file on one machine.

A run that was killed leaves its row behind; the next run takes over when the holder's process is
gone (same host) or its heartbeat is older than `stale_after`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import LockHeldError, step
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
                    "UTC) is working on this store; runs never overlap. Wait for it to finish, or if it died, "
                    f"the lock is taken over after {int(stale_after.total_seconds() // 60)} minutes without "
                    "a heartbeat")
    except sa.exc.IntegrityError:
        raise LockHeldError("another Lethe run took the store at the same moment; runs never overlap") from None


def heartbeat(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(LOCK.update().where(LOCK.c.name == "store", LOCK.c.run_id == run_id)
                     .values(heartbeat_at=_now()))


def release(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(LOCK.delete().where(LOCK.c.name == "store", LOCK.c.run_id == run_id))


def holder(engine: Engine) -> str | None:
    if not sa.inspect(engine).has_table("lethe_run_lock"):
        return None
    with engine.connect() as conn:
        return conn.execute(sa.select(LOCK.c.run_id).where(LOCK.c.name == "store")).scalar()
