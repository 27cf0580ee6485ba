import re

import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python

CASES = [
    (3, "SW1A 1AA", "SW1"),        # postcode district
    (0, "anything", ""),           # length 0 empties
    (10, "short", "short"),        # shorter values unchanged
    (2, "Ünï", "Ün"),              # characters, not bytes
    (2, "", ""),                   # empty stays empty
    (2, None, None),               # NULL stays NULL
]


@pytest.mark.parametrize(("length", "value", "expected"), CASES)
def test_truncate_keeps_the_first_characters(op, length, value, expected):
    assert run(op({"truncate": length}), [value]) == [expected]


@pytest.mark.parametrize("length", [0, 2, 5])
def test_truncate_sql_equals_python_on_a_real_database(engine, op, length):
    sql, python = sql_and_python(engine, op({"truncate": length}), [v for _, v, _ in CASES] + ["日本語テキスト"],
                                 sa.Text)
    assert sql == python


def test_truncate_form_regex_bounds_the_length(op):
    assert re.fullmatch(op({"truncate": 3}).form_regex(), "SW1")
    assert not re.fullmatch(op({"truncate": 3}).form_regex(), "SW1A")
