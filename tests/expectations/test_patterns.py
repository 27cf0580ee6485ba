"""The identifier patterns of the form checks: what they find, the same in Python's re (SQLite's REGEXP)
and PostgreSQL's `~`, and the fast IPv4 form finding exactly what the textbook dotted quad finds."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from expectations import AGGREGATE_PATTERNS, IDENTIFIER_PATTERNS
from expectations.validate import _compiled_regexp

TEXTBOOK_IPV4 = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
EXAMPLES = {  # value -> the checks it must fail
    "lt1.k2026.RiclKVulyTWo4QrQoIMg0GaEkJahNSyx8rfArUxG": set(),
    "lt1.k2026.AAAA1234.5678.9xQ": set(),
    "[redacted]": set(),
    "2026.06.30 12:00": set(),
    "10.0.0.1": {"no_ip"},
    "seen from 192.168.001.020 at noon": {"no_ip"},
    "v1.2.3.4": {"no_ip"},
    "1.2.3": set(),
    "fe80::1": {"no_ip"},
    "2001:db8::/48": set(),
    "anna.berg@example.org": {"no_email"},
    "mail me: x@y.co please": {"no_email"},
    "+1-257-517-4551x679": {"no_phone"},
    "(536)481-2870": {"no_phone"},
    "order 12345": set(),
}


def test_each_pattern_fails_exactly_the_identifiers_in_python():
    for value, expected in EXAMPLES.items():
        found = {name for name, pattern in IDENTIFIER_PATTERNS.items() if re.search(pattern, value)}
        assert found == expected, value


@given(st.text(alphabet="0123456789.:abx -", max_size=40))
def test_the_fast_ipv4_form_finds_what_the_dotted_quad_finds(value):
    fast = IDENTIFIER_PATTERNS["no_ip"].split("|")[0]
    assert bool(re.search(fast, value)) == bool(re.search(TEXTBOOK_IPV4, value))


def test_sqlite_regexp_with_compiled_patterns_answers_as_sqlalchemys(tmp_path):
    """GX's SQLite connections get `_compiled_regexp`: same verdicts, NULL for NULL."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    sa.event.listen(engine, "connect", _compiled_regexp)
    with engine.connect() as conn:
        for value, expected in EXAMPLES.items():
            found = {name for name, pattern in IDENTIFIER_PATTERNS.items()
                     if conn.execute(sa.text("SELECT :v REGEXP :p"), {"v": value, "p": pattern}).scalar()}
            assert found == expected, value
        assert conn.execute(sa.text("SELECT NULL REGEXP 'x'")).scalar() is None
    engine.dispose()


@pytest.mark.parametrize("name", sorted(IDENTIFIER_PATTERNS))
def test_postgresql_reads_each_pattern_as_python_does(pg_url, name):
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        for value, expected in EXAMPLES.items():
            matched = conn.execute(sa.text("SELECT CAST(:v AS text) ~ CAST(:p AS text)"),
                                   {"v": value, "p": IDENTIFIER_PATTERNS[name]}).scalar()
            assert matched == (name in expected), value
    engine.dispose()


# An aggregate's plain dimensions: addresses only as the whole value, whatever else a value looks like.
AGGREGATE_EXAMPLES = {
    "10.0.0.1": {"no_ip"},
    "fe80::1": {"no_ip"},
    "::1": {"no_ip"},
    "2001:0db8:0000:0000:0000:ff00:0042:8329": {"no_ip"},
    "anna.berg@example.org": {"no_email"},
    "203.0.113.0/24": set(),      # a network: what generalize_ip keeps
    "2001:db8::/48": set(),
    "v1.2.3.4": set(),            # a version
    "12:30:00": set(),            # a time of day
    "2026-11-22": set(),          # a date as text
    "12345-6789": set(),          # a ZIP+4 code
    "example.org": set(),
    "DE": set(),
}


def test_aggregate_patterns_find_whole_addresses_and_emails_in_python_sqlite_and_postgresql(pg_url):
    engine = sa.create_engine(pg_url)
    lite = sa.create_engine("sqlite://")
    sa.event.listen(lite, "connect", _compiled_regexp)
    with engine.connect() as conn, lite.connect() as lconn:
        for value, expected in AGGREGATE_EXAMPLES.items():
            for name, pattern in AGGREGATE_PATTERNS.items():
                in_python = bool(re.search(pattern, value))
                in_pg = conn.execute(sa.text("SELECT CAST(:v AS text) ~ CAST(:p AS text)"),
                                     {"v": value, "p": pattern}).scalar()
                in_sqlite = bool(lconn.execute(sa.text("SELECT :v REGEXP :p"), {"v": value, "p": pattern}).scalar())
                assert in_python == in_pg == in_sqlite == (name in expected), (value, name)
    engine.dispose()
    lite.dispose()
