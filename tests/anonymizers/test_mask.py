import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python

CASES = [
    ({"keep_last": 2}, "+49 170 1234567", "*************67"),     # phone: last two kept
    ({"keep_first": 1, "keep_last": 1}, "secret", "s****t"),     # both ends kept
    ({}, "abc", "***"),                                           # defaults mask everything
    ({"keep_last": 2, "char": "#"}, "12345", "###45"),            # custom char
    ({"keep_first": 2, "keep_last": 2}, "abcd", "****"),          # no longer than kept: fully masked
    ({"keep_last": 3}, "", ""),                                   # empty stays empty
    ({"keep_last": 1}, "Ünïcødé✓", "*******✓"),                   # characters, not bytes
    ({"keep_last": 2}, None, None),                               # NULL stays NULL
]


@pytest.mark.parametrize(("params", "value", "expected"), CASES)
def test_mask_keeps_the_requested_ends_and_masks_the_rest(op, params, value, expected):
    assert run(op({"mask": params}), [value]) == [expected]


@pytest.mark.parametrize("params", [{"keep_last": 2}, {"keep_first": 1, "keep_last": 1, "char": "x"}, {}])
def test_mask_sql_equals_python_on_a_real_database(engine, op, params):
    values = [value for _, value, _ in CASES] + ["a", "日本語テキスト", "x" * 40]
    sql, python = sql_and_python(engine, op({"mask": params}), values, sa.Text)
    assert sql == python


@pytest.mark.parametrize(("params", "value"), [({"keep_last": 2}, "*****67"), ({"keep_first": 1}, "****"),
                                               ({"char": "#"}, "")])
def test_mask_form_regex_matches_masked_values(op, params, value):
    import re
    assert re.fullmatch(op({"mask": params}).form_regex(), value)
    assert not re.fullmatch(op({"mask": {"keep_last": 2}}).form_regex(), "+49 170 1234567")
