import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python

T = dt.datetime(2026, 3, 15, 10, 20, 30, 123456)
CASES = [
    ("day", [T], [dt.datetime(2026, 3, 15)]),                          # datetime stays datetime
    ("month", [T], [dt.datetime(2026, 3, 1)]),
    ("year", [T, None], [dt.datetime(2026, 1, 1), None]),              # NULL stays NULL
    ("month", [dt.date(2024, 2, 29)], [dt.date(2024, 2, 1)]),         # date stays date
    ("year", [dt.date(2024, 2, 29)], [dt.date(2024, 1, 1)]),
    ("month", ["2026-03-15"], ["2026-03-01"]),                         # ISO date text stays text
    ("day", ["2026-03-15T10:20:30+02:00"], ["2026-03-15T00:00:00+02:00"]),  # ISO datetime text keeps zone
    ("month", ["not a date", ""], [None, None]),                      # unparseable text becomes NULL
    # ISO text keeps its spelling, so the result fits wherever the input did: separator, precision, zone
    ("month", ["2026-01-15 10:00", "2026-01-15 10:00:59.5Z"], ["2026-01-01 00:00", "2026-01-01 00:00:00.0Z"]),
    ("year", ["20260115T1000-0530"], ["20260101T0000-0530"]),          # basic format stays basic
    ("day", ["2026-W03-4T10:00"], ["2026-01-15T00:00:00"]),            # a week date: the extended form
]


def test_generalize_date_on_iso_text_never_writes_more_characters_than_it_read(op):
    values = ["2026-01-15 10:00", "2026-02-28T23:59:59.999999+14:00", "20261231T2359Z", "2026-12-31", "2026-07-04T05"]
    for unit in ("day", "month", "year"):
        assert [len(v) for v in run(op({"generalize_date": unit}), values)] == [len(v) for v in values]


@pytest.mark.parametrize(("unit", "values", "expected"), CASES)
def test_generalize_date_truncates_keeping_the_type(op, unit, values, expected):
    assert run(op({"generalize_date": unit}), values) == expected


def test_generalize_date_keeps_the_time_zone_of_aware_timestamps(op):
    s = pd.Series(pd.to_datetime(["2026-03-15 10:20:30+00:00"]))
    out = op({"generalize_date": "month"}).apply(s)
    assert out.dt.tz is not None and out.iloc[0] == pd.Timestamp("2026-03-01", tz="UTC")


@pytest.mark.parametrize("unit", ["day", "month", "year"])
@pytest.mark.parametrize(("column_type", "values"), [
    (sa.DateTime, [T, dt.datetime(1999, 12, 31, 23, 59, 59), None]),
    (sa.Date, [dt.date(2024, 2, 29), dt.date(1970, 1, 1), None]),
])
def test_generalize_date_sql_equals_python_on_a_real_database(engine, op, unit, column_type, values):
    sql, python = sql_and_python(engine, op({"generalize_date": unit}), values, column_type)
    assert sql == python
