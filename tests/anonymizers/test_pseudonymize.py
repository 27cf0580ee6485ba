import hashlib
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from anonymizers import TOKEN_REGEX, OperatorContext, build_operator, is_token
from tests.anonymizers.conftest import run, sql_and_python

VALUES = ["alice@example.com", "", "Ünïcødé ✓ 日本", "a" * 500, "lt1.k2026.short", "line\nbreak", None]


@pytest.mark.parametrize(("value", "check"), [
    ("alice@example.com", is_token),                          # text becomes a token
    ("", is_token),                                           # empty string is a value too
    ("Ünïcødé ✓ 日本", is_token),                              # unicode
    ("a" * 5000, lambda t: is_token(t) and len(t) <= 64),     # long input, bounded token
    ("lt1.k2026.not-a-token", is_token),                      # token-like text is still pseudonymized
    (None, lambda t: t is None),                              # NULL stays NULL
    (42, lambda t: isinstance(t, int) and t >= 0),            # integer stays a non-negative integer
])
def test_pseudonymize_turns_values_into_tokens(op, value, check):
    assert check(run(op("pseudonymize"), [value])[0])


def test_token_carries_the_key_id_and_fits_64_chars():
    ctx = OperatorContext(key=b"k" * 32, key_id="x" * 16)
    token = run(build_operator("pseudonymize", ctx), ["v"])[0]
    assert token.startswith("lt1." + "x" * 16 + ".") and len(token) <= 64
    assert re.fullmatch(TOKEN_REGEX, token)


def test_same_input_and_key_give_the_same_token_in_every_run_and_table(ctx):
    first = run(build_operator("pseudonymize", ctx), ["alice", "bob", "alice"])
    again = run(build_operator("pseudonymize", OperatorContext(key=ctx.key, key_id=ctx.key_id)), ["alice"])
    assert first[0] == first[2] == again[0] != first[1]


def test_a_different_key_gives_different_tokens(ctx):
    other = OperatorContext(key=b"z" * 32, key_id=ctx.key_id)
    assert run(build_operator("pseudonymize", ctx), ["alice"]) != run(build_operator("pseudonymize", other),
                                                                      ["alice"])


def test_tokens_of_any_key_pass_through_unchanged(op):
    foreign = run(build_operator("pseudonymize", OperatorContext(key=b"q" * 40, key_id="old")), ["alice"])[0]
    assert run(op("pseudonymize"), [foreign]) == [foreign]


def test_tokens_are_not_a_plain_hash_of_the_input(op):
    inputs = ["alice@example.com", "bob", "12345", ""]
    tokens = run(op("pseudonymize"), inputs)
    dictionary = {f(v.encode()).hexdigest() for v in inputs for f in (hashlib.sha256, hashlib.md5)}
    dictionary |= {f(v.encode()).digest().hex()[:40] for v in inputs for f in (hashlib.sha256, hashlib.md5)}
    import base64
    dictionary |= {base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()[:30]).decode() for v in inputs}
    assert not any(d in t for t in tokens for d in dictionary)


def test_integer_pseudonyms_keep_nulls_and_the_integer_type(op):
    out = op("pseudonymize").apply(pd.Series([1, None, 3], dtype="Int64"))
    assert str(out.dtype) == "Int64" and out.isna().tolist() == [False, True, False]


@pytest.mark.parametrize(("column_type", "values"), [
    (sa.Text, VALUES + ["lt1.k2026.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]),  # incl. an existing token
    (sa.BigInteger, [0, 1, -5, 2**62, None]),
])
def test_pseudonymize_sql_equals_python_on_a_real_database(engine, op, column_type, values):
    sql, python = sql_and_python(engine, op("pseudonymize"), values, column_type)
    if engine.dialect.name == "sqlite":
        assert sql is None  # SQLite has no HMAC; Lethe computes in Python
    else:
        assert sql == python


def test_postgres_sql_neither_binds_nor_inlines_the_key(pg_engine, ctx):
    """Servers log statements with their parameters: the key is read from the session (sql_secrets)."""
    expr = build_operator("pseudonymize", ctx).sql(sa.column("email", sa.Text), pg_engine.dialect)
    compiled = expr.compile(dialect=pg_engine.dialect)
    assert ctx.key not in compiled.params.values()
    assert ctx.key.hex() not in str(compiled) and repr(ctx.key) not in str(compiled)
    assert "pg_temp.lethe_secrets" in str(compiled)


def test_form_regex_is_the_token_pattern(op):
    assert op("pseudonymize").form_regex() == TOKEN_REGEX


@pytest.mark.parametrize(("column_type", "values"), [
    # longer than one 4,096-value chunk of the Python path, with NULLs, unicode and an existing token
    (sa.Text, [None if i % 997 == 0 else "lt1.k2026.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" if i == 4096
               else f"ü{i}@example.com" for i in range(9000)]),
    (sa.BigInteger, [None if i % 997 == 0 else (i - 4500) * 1_000_000_007 for i in range(9000)]),
])
def test_pseudonymize_sql_equals_python_across_chunks(pg_engine, op, column_type, values):
    sql, python = sql_and_python(pg_engine, op("pseudonymize"), values, column_type)
    assert sql == python
