import datetime as dt
import re

import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python


@pytest.mark.parametrize(("spec", "values", "expected"), [
    ("keep", ["a", None, "ü"], ["a", None, "ü"]),                             # keep: unchanged, NULL too
    ("keep", [1, 2], [1, 2]),                                                 # keep: any kind
    ("redact", ["secret", None, ""], [None, None, None]),                     # redact: everything NULL
    ("redact", [dt.date(2020, 1, 1)], [None]),                                # redact: any kind
    ({"redact": {"with": "[redacted]"}}, ["x", None], ["[redacted]", "[redacted]"]),  # fill, NOT NULL columns
    ({"redact": {"with": 0}}, [17, 42], [0, 0]),                              # numeric fill
])
def test_keep_and_redact(op, spec, values, expected):
    assert run(op(spec), values) == expected


@pytest.mark.parametrize("spec", ["keep", "redact", {"redact": {"with": "[redacted]"}}])
def test_keep_and_redact_sql_equals_python_on_a_real_database(engine, op, spec):
    sql, python = sql_and_python(engine, op(spec), ["a", None, "ünï", ""], sa.Text)
    assert sql == python


def test_redact_form_is_the_fill_value(op):
    assert re.fullmatch(op({"redact": {"with": "[redacted]"}}).form_regex(), "[redacted]")
    assert op("redact").form_regex() is None
