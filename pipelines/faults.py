"""Fault injection for crash-safety tests: `LETHE_FAULT=<point>[:<n>]` kills the process at the n-th
time it reaches that point (default the first). Points: apply.chunk, apply.chunk.<table>, vault.after_copy,
vault.after_verify, vault.mid_delete, release.after_return. Unset in production: a no-op.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def checkpoint(point: str) -> None:
    spec = os.environ.get("LETHE_FAULT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
