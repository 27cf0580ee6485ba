"""How many chunk transactions a run keeps in flight at once (`--workers`, `LETHE_WORKERS`)."""

from __future__ import annotations

import os

from pipelines.errors import InputError

MAX_WORKERS = 8
DEFAULT_WORKERS = 2


def resolve_workers(flag: int | None) -> int:
    """Concurrent chunk transactions: --workers, then LETHE_WORKERS, then 2 (PostgreSQL uses them; SQLite has
    one writer and ignores them). Bounded so a run never takes more than a few of the store's connections.
    """
    raw = flag if flag is not None else os.environ.get("LETHE_WORKERS", DEFAULT_WORKERS)
    try:
        workers = int(raw)
    except (TypeError, ValueError):
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        source = "--workers" if flag is not None else "LETHE_WORKERS"
        raise InputError(f"{source} must be a whole number from 1 to {MAX_WORKERS} (got {str(raw)[:20]!r})")
    return workers
