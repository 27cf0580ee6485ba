import re

import pytest
import sqlalchemy as sa

from tests.anonymizers.conftest import run, sql_and_python

CASES = [
    ("alice@example.com", "example.com"),             # plain address
    ("Bob@Mail.Example.ORG", "mail.example.org"),      # lowercased
    ('"a@b"@last.example', "last.example"),            # quoted local part: after the last @
    ("no-at-sign", None),                              # not an address: NULL
    ("trailing@", None),                               # empty domain: NULL
    ("a@localhost", None),                             # no dot: not a domain
    ("a@b..c", None),                                  # empty label
    ("a@ex ample.com", None),                          # whitespace
    ("example.com", "example.com"),                    # already a domain: kept (idempotence)
    ("x@BÜCHER.DE", "bÜcher.de"),                      # only ASCII is lowercased (same in every engine)
    ("", None),                                        # empty string has no @
    (None, None),                                      # NULL stays NULL
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_email_domain_keeps_the_part_after_the_last_at(op, value, expected):
    assert run(op("email_domain"), [value]) == [expected]


def test_email_domain_sql_equals_python_on_a_real_database(engine, op):
    values = [v for v, _ in CASES] + ["ü@日本.JP", ".a.b", "a.b.", "x@-.-"]
    sql, python = sql_and_python(engine, op("email_domain"), values, sa.Text)
    assert sql == python


def test_email_domain_output_matches_its_form(op):
    out = run(op("email_domain"), ["A@Example.COM"])
    assert re.fullmatch(op("email_domain").form_regex(), out[0])
