"""Shared fixtures: a random key per test and real SQLite/PostgreSQL databases for SQL-versus-Python checks."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import secrets

import pandas as pd
import pytest
import sqlalchemy as sa

from anonymizers import OperatorContext, build_operator, sql_secrets

_tables = itertools.count()


@pytest.fixture
def ctx() -> OperatorContext:
    return OperatorContext(key=secrets.token_bytes(32), key_id="k2026")


@pytest.fixture
def op(ctx):
    """Build an operator from a spec with the test's key."""
    return lambda spec: build_operator(spec, ctx)


def run(operator, values, subjects=None) -> list:
    """Apply to a list and return plain Python values, NULLs as None."""
    out = operator.apply(pd.Series(values), None if subjects is None else pd.Series(subjects))
    return [plain(v) for v in out.tolist()]


def plain(v):
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "item") and not isinstance(v, dt.date):
        return v.item()
    return v


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory):
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('anon') / 'store.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def pg_engine(pg):
    engine = sa.create_engine(pg.url(pg.create_database("anon")))
    sql_secrets.install(engine)  # as pipelines.store.connect does
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


def sql_and_python(engine, operator, values, column_type, subjects=None, subject_type=sa.Integer):
    """Store values in a real table, then compute the operator in SQL and in Python on what was read back.

    Returns (sql_results, python_results), or (None, python_results) when there is no SQL form.
    """
    md = sa.MetaData()
    table = sa.Table(f"t{next(_tables)}", md, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", column_type), sa.Column("s", subject_type))
    md.create_all(engine)
    subjects = subjects if subjects is not None else [None] * len(values)
    with engine.begin() as conn:
        if values:
            conn.execute(table.insert(), [{"id": i, "v": v, "s": s}
                                          for i, (v, s) in enumerate(zip(values, subjects, strict=True))])
    with engine.connect() as conn:
        frame = pd.read_sql(sa.select(table.c.id, table.c.v, table.c.s).order_by(table.c.id), conn)
        expr = operator.sql(table.c.v, engine.dialect, subject=table.c.s)
        sql_out = None
        if expr is not None:
            rows = conn.execute(sa.select(expr.label("out")).select_from(table).order_by(table.c.id)).all()
            sql_out = [plain(r.out) for r in rows]
    py_out = [plain(v) for v in operator.apply(frame["v"], frame["s"]).tolist()]
    return sql_out, py_out
