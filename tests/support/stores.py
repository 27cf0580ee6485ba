"""Helpers for engine tests: snapshots of tables, an independent oracle of what is due, the CLI."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

ROOT = Path(__file__).resolve().parents[2]
POLICIES = Path(__file__).parent / "policies"
REFERENCE_POLICY = POLICIES / "reference.yaml"
CLOUD3D = ROOT / "policies" / "cloud3d.yaml"


def cloud3d_policy(directory: Path) -> Path:
    """The shipped reference policy, with the key from LETHE_PSEUDONYM_KEY and no default store/vault."""
    lines = [line for line in CLOUD3D.read_text().splitlines() if not line.startswith(("store:", "vault:"))]
    text = "\n".join(lines).replace('"file:demo/pseudonym.key"', "env:LETHE_PSEUDONYM_KEY")
    path = directory / "cloud3d.yaml"
    path.write_text(text + "\n")
    return path


def snapshot(url: str, tables: list[str] | None = None) -> dict[str, list[tuple]]:
    """Every row of every (named) table, sorted: equal snapshots mean byte-identical contents."""
    engine = sa.create_engine(url)
    try:
        names = tables or [t for t in sa.inspect(engine).get_table_names()]
        out = {}
        with engine.connect() as conn:
            for name in names:
                if not sa.inspect(conn).has_table(name):
                    out[name] = None
                    continue
                rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).all()  # test-only, fixed names
                out[name] = sorted((tuple(r) for r in rows), key=repr)
        return out
    finally:
        engine.dispose()


def frame(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(f'SELECT * FROM "{table}"'), conn)
    finally:
        engine.dispose()


def user_tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sorted(t for t in sa.inspect(engine).get_table_names() if not t.startswith("lethe_"))
    finally:
        engine.dispose()


def cutoff(as_of: dt.date, period: str) -> pd.Timestamp:
    """The oracle's own duration arithmetic (dateutil clamps to the month's end too)."""
    n, unit = int(period[:-1]), period[-1]
    delta = {"d": relativedelta(days=n), "w": relativedelta(weeks=n), "m": relativedelta(months=n),
             "y": relativedelta(years=n)}[unit]
    return pd.Timestamp(dt.datetime.combine(as_of, dt.time()) - delta)


def lethe(*args: str, env: dict | None = None, check: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real `lethe` console script."""
    full_env = {**os.environ, **(env or {})}
    exe = Path(sys.executable).with_name("lethe")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, check=check,
                          timeout=timeout, cwd=ROOT)
