"""Laws the operators promise, checked over unicode, empty strings, NULLs and malformed input."""

import secrets

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonymizers import OperatorContext, build_operator, is_token
from tests.anonymizers.conftest import plain, run

CTX = OperatorContext(key=secrets.token_bytes(32), key_id="prop")
texts = st.lists(st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["", "@", "1.2.3.4", "::1"])),
                 max_size=20)
IDEMPOTENT_TEXT = ["keep", "redact", {"redact": {"with": "[redacted]"}}, "pseudonymize",
                   {"mask": {"keep_first": 1, "keep_last": 2}}, {"mask": {"char": "#"}}, "generalize_ip",
                   {"generalize_ip": {"ipv4_prefix": 8, "ipv6_prefix": 100}}, {"truncate": 4}, "email_domain",
                   {"generalize_date": "month"}]
OPS = {str(spec): build_operator(spec, CTX) for spec in IDEMPOTENT_TEXT + [{"fake": "name"}]}


def out(operator, values):
    return [plain(v) for v in operator.apply(pd.Series(values, dtype=object)).tolist()]


@pytest.mark.parametrize("spec", IDEMPOTENT_TEXT, ids=str)
@settings(max_examples=60, deadline=None)
@given(values=texts)
def test_idempotent_text_operators_change_nothing_the_second_time(spec, values):
    operator = OPS[str(spec)]
    once = out(operator, values)
    assert out(operator, once) == once


@pytest.mark.parametrize("spec", IDEMPOTENT_TEXT + [{"fake": "name"}], ids=str)
@settings(max_examples=40, deadline=None)
@given(values=texts)
def test_operators_are_deterministic_and_keep_nulls(spec, values):
    operator = OPS[str(spec)]
    first, second = out(operator, values), out(operator, list(reversed(values)))
    assert first == list(reversed(second))
    if not str(spec).startswith("{'redact'"):
        assert all(o is None for v, o in zip(values, first, strict=True) if v is None)


@settings(max_examples=60, deadline=None)
@given(ints=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=20))
def test_integer_pseudonyms_are_deterministic_non_negative_int64(ints):
    operator = OPS["pseudonymize"]
    series = pd.Series(ints, dtype="Int64")
    once = operator.apply(series)
    assert once.equals(operator.apply(series))
    assert all(0 <= v < 2**63 for v in once.dropna())


@pytest.mark.parametrize("spec", ["pseudonymize", "redact", {"fake": "name"}], ids=str)
@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.text(min_size=1, max_size=30).filter(lambda v: not is_token(v)), min_size=1,
                       max_size=20))
def test_no_original_value_survives(spec, values):
    outputs = out(OPS[str(spec)], values)
    assert not set(values) & {o for o in outputs if o is not None}


@settings(max_examples=60, deadline=None)
@given(value=st.text(min_size=4, max_size=30))
def test_mask_keeps_nothing_of_the_masked_part(value):
    masked = out(OPS[str({"mask": {"keep_first": 1, "keep_last": 2}})], [value])[0]
    assert len(masked) == len(value)
    assert set(masked[1:-2]) == {"*"} and masked[0] == value[0] and masked[-2:] == value[-2:]


def test_pseudonymize_and_redact_text_lengths_are_what_they_write(op):
    token = op("pseudonymize")
    assert {len(v) for v in run(token, ["a", "a much longer value than a pseudonym " * 3])} == {token.text_length()}
    fill = op({"redact": {"with": "[redacted]"}})
    assert fill.text_length() == len("[redacted]") and op("redact").text_length() is None
    assert op({"mask": {"keep_last": 2}}).text_length() is None  # never longer than its input
