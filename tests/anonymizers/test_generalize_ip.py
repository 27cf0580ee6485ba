import ipaddress
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.anonymizers.conftest import run, sql_and_python

CASES = [
    ({}, "203.0.113.77", "203.0.113.0/24"),                          # IPv4 default /24
    ({}, "2001:db8:1:2::1", "2001:db8:1::/48"),                      # IPv6 default /48
    ({"ipv4_prefix": 16}, "10.1.2.3", "10.1.0.0/16"),                # custom v4 prefix
    ({"ipv6_prefix": 32}, "2001:DB8:ffff::1", "2001:db8::/32"),      # case-insensitive hex
    ({"ipv4_prefix": 0}, "8.8.8.8", "0.0.0.0/0"),                    # /0 keeps only the family
    ({}, "::ffff:192.0.2.1", "::/48"),                               # IPv4-mapped IPv6 is IPv6
    ({}, "203.0.113.0/24", "203.0.113.0/24"),                        # own output: unchanged
    ({}, "203.0.113.9/24", "203.0.113.0/24"),                        # same prefix: generalized
    ({}, "203.0.113.9/32", None),                                    # other prefix: not an address
    ({}, "256.1.1.1", None),                                         # octet out of range
    ({}, "01.2.3.4", None),                                          # leading zero is ambiguous
    ({}, "1.2.3", None),                                             # short form
    ({}, "fe80::1%eth0", None),                                      # zone id
    ({}, "1::2::3", None),                                           # two ::
    ({}, " 1.2.3.4", None),                                          # whitespace
    ({}, "not an ip", None),                                         # garbage
    ({}, "", None),                                                  # empty
    ({}, None, None),                                                # NULL stays NULL
]


@pytest.mark.parametrize(("params", "value", "expected"), CASES)
def test_generalize_ip_gives_the_network_prefix_or_null(op, params, value, expected):
    assert run(op({"generalize_ip": params}), [value]) == [expected]


@pytest.mark.parametrize("params", [{}, {"ipv4_prefix": 16, "ipv6_prefix": 64}, {"ipv4_prefix": 32}])
def test_generalize_ip_sql_equals_python_on_a_real_database(engine, op, params):
    operator = op({"generalize_ip": params})
    values = [v for _, v, _ in CASES] + ["::", "::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4",
                                         "1::", "0001:0db8::", "00001::", "::1.2.3.04", "1:2:3:4:5:6:7::"]
    sql, python = sql_and_python(engine, operator, values, sa.Text)
    assert sql is None if engine.dialect.name == "sqlite" else sql == python


def test_generalize_ip_has_no_sql_form_where_formats_would_differ(op):
    assert op({"generalize_ip": {"ipv6_prefix": 96}}).sql(sa.column("ip", sa.Text), "postgresql") is None


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).exploded),
    st.integers(0, 2**32 - 1).map(lambda n: f"::ffff:{ipaddress.IPv4Address(n)}"),
    st.text(alphabet="0123456789abcdefABCDEF:./", max_size=20),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(addresses, min_size=1, max_size=30))
def test_generalize_ip_sql_equals_python_for_generated_addresses(pg_engine, op, values):
    sql, python = sql_and_python(pg_engine, op({"generalize_ip": {"ipv4_prefix": 20, "ipv6_prefix": 56}}),
                                 values, sa.Text)
    assert sql == python


def test_generalize_ip_output_matches_its_form(op):
    operator = op("generalize_ip")
    for out in run(operator, ["203.0.113.77", "2001:db8::1"]):
        assert re.fullmatch(operator.form_regex(), out)
    assert not re.fullmatch(operator.form_regex(), "203.0.113.77")


@pytest.mark.parametrize("prefix", [0, 1, 8, 9, 16, 23, 24, 25, 31, 32])
def test_generalize_ip_text_length_is_its_longest_ipv4_network(op, prefix):
    """The bound a VARCHAR(n) column is checked against: reached by 255.255.255.255, never exceeded."""
    operator = op({"generalize_ip": {"ipv4_prefix": prefix}})
    longest = run(operator, ["255.255.255.255"])[0]
    assert len(longest) == operator.text_length()
    others = run(operator, ["10.1.2.3", "192.168.117.20", "1.0.0.1", "0.0.0.0"])
    assert all(len(v) <= operator.text_length() for v in others)

