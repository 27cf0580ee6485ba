import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from anonymizers import OperatorError
from tests.anonymizers.conftest import plain, run, sql_and_python

T = dt.datetime(2026, 3, 15, 10, 20)


@pytest.mark.parametrize(("values", "subjects", "check"), [
    ([T, T], [1, 1], lambda o: o[0] == o[1] != T),                           # same subject, same shift
    ([T, T + dt.timedelta(days=3)], [7, 7], lambda o: o[1] - o[0] == dt.timedelta(days=3)),  # intervals kept
    ([dt.date(2026, 1, 1)], ["u-1"], lambda o: isinstance(o[0], dt.date) and o[0] != dt.date(2026, 1, 1)),
    ([None, T], [1, 1], lambda o: o[0] is None),                              # NULL stays NULL
    ([T], [None], lambda o: o[0] is None),                                    # no subject: NULL
])
def test_shift_date_moves_a_subjects_dates_together(op, values, subjects, check):
    assert check(run(op({"shift_date": 30}), values, subjects))


def test_shift_is_within_max_days_and_never_zero(op):
    operator = op({"shift_date": 3})
    out = run(operator, [T] * 200, list(range(200)))
    shifts = {(o - T).days for o in out}
    assert shifts <= {-3, -2, -1, 1, 2, 3} and len(shifts) == 6


def test_shift_date_without_subjects_is_an_error(op):
    with pytest.raises(OperatorError, match="shift_date: needs the subject column"):
        run(op({"shift_date": 3}), [T])


@pytest.mark.parametrize(("column_type", "values"), [
    (sa.DateTime, [T, T, dt.datetime(2000, 2, 29), None, T]),
    (sa.Date, [dt.date(2026, 3, 15), dt.date(2000, 2, 29), None, dt.date(2026, 3, 15), dt.date(1, 6, 1)]),
])
def test_shift_date_sql_equals_python_on_a_real_database(engine, op, column_type, values):
    sql, python = sql_and_python(engine, op({"shift_date": 400}), values, column_type,
                                 subjects=[1, 2, 3, 4, None])
    assert sql == python if engine.dialect.name == "postgresql" else sql is None


def test_shift_date_on_sqlite_text_timestamps_mixing_offsets_and_no_offset(op):
    """SQLite hands back ISO text with an offset as an aware datetime and without one as a naive one (UTC):
    pandas refused to mix them (ValueError, the run failed part-way on every attempt). Each is one instant,
    shifted in UTC, by its subject's shift like a date of the same subject."""
    shift = op({"shift_date": 5})
    utc = dt.UTC
    values = pd.Series([dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                        dt.datetime(2025, 6, 15, 10, 0), None, dt.datetime(2025, 1, 1, tzinfo=utc)], dtype=object)
    subjects = pd.Series([1, 1, 1, 2], dtype=object)
    out = [plain(v) for v in shift.apply(values, subjects).tolist()]
    days = [plain(v) for v in shift.apply(pd.Series([dt.date(2025, 1, 1)] * 4, dtype=object), subjects).tolist()]
    offsets = [d - dt.date(2025, 1, 1) for d in days]
    assert out[0] == dt.datetime(2025, 12, 31, 21, 30, tzinfo=utc) + offsets[0]
    assert out[1] == dt.datetime(2025, 6, 15, 10, 0, tzinfo=utc) + offsets[1]
    assert out[2] is None
    assert out[3] == dt.datetime(2025, 1, 1, tzinfo=utc) + offsets[3]


@pytest.mark.parametrize(("column_type", "ends"), [
    (sa.DateTime, [dt.datetime(9999, 12, 31), dt.datetime(1, 1, 1)]),  # "valid until 9999-12-31", year 1
    (sa.Date, [dt.date(9999, 12, 31), dt.date(1, 1, 1)]),
])
def test_a_shift_stops_at_the_ends_of_the_calendar(engine, op, column_type, ends):
    """Shifting 9999-12-31 forward failed every chunk of its table (OverflowError, or a datetime pandas held and
    Python could not); PostgreSQL wrote a year 10000 no Python client reads. The shift stops at the end."""
    subjects = list(range(40))
    values = [ends[i % 2] for i in subjects]
    sql, python = sql_and_python(engine, op({"shift_date": 30}), values, column_type, subjects=subjects)
    top = dt.datetime.max if column_type is sa.DateTime else dt.date.max
    for out in (python, sql) if sql is not None else (python,):
        last, first = out[0::2], out[1::2]
        assert max(last) == top and min(first) == ends[1]
        assert len(set(last)) > 1 and len(set(first)) > 1  # the others still move
    assert sql == python if engine.dialect.name == "postgresql" else sql is None


def test_postgresql_infinity_stays_infinity(pg_engine, op):
    """PostgreSQL's infinite dates and timestamps have no shift: they are left as they are."""
    table = sa.Table("infinite", sa.MetaData(), sa.Column("s", sa.Integer), sa.Column("d", sa.Date),
                     sa.Column("t", sa.DateTime(timezone=True)))
    table.create(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO infinite VALUES (1, 'infinity', '-infinity'), (2, '-infinity', 'infinity')"))
        shift = op({"shift_date": 30})
        conn.execute(sa.update(table).values(d=shift.sql(table.c.d, pg_engine.dialect, table.c.s),
                                             t=shift.sql(table.c.t, pg_engine.dialect, table.c.s)))
        rows = conn.execute(sa.text("SELECT d::text, t::text FROM infinite ORDER BY s")).all()
    assert [tuple(r) for r in rows] == [("infinity", "-infinity"), ("-infinity", "infinity")]
