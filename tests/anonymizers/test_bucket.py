import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python

CASES = [
    (10, [37], [30]),                  # age band
    (10, [-1], [-10]),                 # negative numbers floor, not truncate
    (10, [0, 10, 9], [0, 10, 0]),      # bounds belong to their own bucket
    (5, [None, 7], [None, 5]),         # NULL stays NULL (nullable integers)
    (0.5, [1.26, -0.1], [1.0, -0.5]),  # float size
    (100, [1234.5], [1200.0]),         # float values, integer size
]


@pytest.mark.parametrize(("size", "values", "expected"), CASES)
def test_bucket_gives_the_lower_bound(op, size, values, expected):
    assert run(op({"bucket": size}), values) == expected


@pytest.mark.parametrize(("size", "column_type", "values"), [
    (10, sa.Integer, [37, -1, 0, 10, 9, None, -10, -11]),
    (7, sa.BigInteger, [2**40 + 3, -(2**40) - 3]),
    (0.1, sa.Float, [0.3, -0.05, 1e-9, None, 123.456, 0.7000000000000001]),
    (2.5, sa.Integer, [7, -3, 0]),
])
def test_bucket_sql_equals_python_on_a_real_database(engine, op, size, column_type, values):
    sql, python = sql_and_python(engine, op({"bucket": size}), values, column_type)
    assert sql == python
