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
