from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python

CASES = [
    (10, [37], [30]),                  # age band
    (10, [-1], [-10]),                 # negative numbers floor, not truncate
    (10, [0, 10, 9], [0, 10, 0]),      # bounds belong to their own bucket
    (5, [None, 7], [None, 5]),         # NULL stays NULL (nullable integers)
    (0.5, [1.26, -0.1], [1.0, -0.5]),  # float size
    (0.1, [0.7, 0.3, 1.24, -1.05], [0.7, 0.3, 1.2, -1.1]),  # the decimals people write, not binary noise
    (2.5, [19.99, 7.77, -3.1], [17.5, 7.5, -5.0]),
    (100, [1234.5], [1200.0]),         # float values, integer size
]


@pytest.mark.parametrize(("size", "values", "expected"), CASES)
def test_bucket_gives_the_lower_bound(op, size, values, expected):
    assert run(op({"bucket": size}), values) == expected


@pytest.mark.parametrize(("size", "column_type", "values"), [
    (10, sa.Integer, [37, -1, 0, 10, 9, None, -10, -11]),
    (7, sa.BigInteger, [2**40 + 3, -(2**40) - 3]),
    (0.1, sa.Float, [0.3, -0.05, 1e-9, None, 123.456, 0.7000000000000001, 0.7, 1.24, -1.05, 0.69999]),
    (2.5, sa.Float, [19.99, 7.77, -3.1, 7.5, 1e15 + 0.5]),
    (3, sa.Float, [0.3, 9.0, -1e-300, 8.999999]),
    (2.0, sa.Integer, [7, -3, 0]),
])
def test_bucket_sql_equals_python_on_a_real_database(engine, op, size, column_type, values):
    sql, python = sql_and_python(engine, op({"bucket": size}), values, column_type)
    assert sql == python


def test_bucket_of_0_7_by_0_1_is_0_7_and_idempotent(op):
    """Binary floating point alone puts 0.7 (0.69999999999999996) in the bucket 0.6000000000000001."""
    bucket = op({"bucket": 0.1})
    once = run(bucket, [0.7, 0.3, 1.24])
    assert once == [0.7, 0.3, 1.2] and run(bucket, once) == once


def test_bucket_on_numeric_is_exact(engine, op):
    """A NUMERIC is bucketed as the Decimal it is (the engine reads it as one): as a float,
    123456789012345678.99 had the "lower bound" 123456789012345680, above the value; and there is no SQL form
    (float arithmetic in the database would be as wrong)."""
    values = [Decimal("123456789012345678.99"), Decimal("-0.01"), None, Decimal("19.99")]
    sql, _ = sql_and_python(engine, op({"bucket": 1}), values, sa.Numeric(30, 2))
    assert sql is None
    assert run(op({"bucket": 1}), values) == [Decimal("123456789012345678"), Decimal("-1"), None, Decimal("19")]
    assert run(op({"bucket": 2.5}), values) == [Decimal("123456789012345677.5"), Decimal("-2.5"), None,
                                                 Decimal("17.5")]


def test_a_fractional_size_is_refused_on_an_integer_column(op):
    """An integer column cannot hold 7.5, the bound of 8 in buckets of 2.5 (PostgreSQL rounded it to 8)."""
    assert not op({"bucket": 2.5}).accepts("integer")
    assert op({"bucket": 2.0}).accepts("integer") and op({"bucket": 2.5}).accepts("float")
