import secrets

import pytest

from anonymizers import OperatorContext, build_operator
from tests.anonymizers.conftest import run

# One fixed random key for the module: pools are cached per key, and building one takes a second.
KEY = OperatorContext(key=secrets.token_bytes(32), key_id="k1")


@pytest.fixture
def ctx():
    return KEY


@pytest.mark.parametrize(("spec", "value", "check"), [
    ({"fake": "name"}, "Alice Example", lambda v: isinstance(v, str) and " " in v),    # realistic full name
    ({"fake": "email"}, "a@b.c", lambda v: "@" in v),                                   # realistic email
    ({"fake": {"provider": "city", "locale": "de_DE"}}, "Berlin", lambda v: isinstance(v, str) and v),  # locale
    ({"fake": "name"}, "", lambda v: isinstance(v, str) and v),                         # empty still faked
    ({"fake": "name"}, None, lambda v: v is None),                                      # NULL stays NULL
])
def test_fake_gives_a_realistic_value(op, spec, value, check):
    assert check(run(op(spec), [value])[0])


def test_fake_is_deterministic_per_value_and_key(ctx):
    a = run(build_operator({"fake": "name"}, ctx), ["alice", "bob", "alice"])
    b = run(build_operator({"fake": "name"}, OperatorContext(key=ctx.key, key_id=ctx.key_id)), ["alice"])
    assert a[0] == a[2] == b[0]


def test_fake_depends_on_the_key(ctx):
    other = OperatorContext(key=b"o" * 32, key_id="k2")
    values = [f"person {i}" for i in range(20)]
    # different pools and different picks: at most a few names coincide by chance
    assert run(build_operator({"fake": "name"}, ctx), values) != run(build_operator({"fake": "name"}, other),
                                                                     values)


def test_fake_never_returns_the_original_value(op):
    operator = op({"fake": "first_name"})
    pool = operator.pool
    assert all(out != v for v, out in zip(pool[:500], run(operator, list(pool[:500])), strict=True))


def test_fake_has_no_sql_form(op):
    assert op({"fake": "name"}).sql(None, "postgresql") is None


def test_fake_text_length_bounds_every_value_it_writes(op):
    """The bound a VARCHAR(n) column is checked against: every fake written comes from the key's pool, no
    value of which is longer, and the longest is one of them."""
    fake = op({"fake": "name"})
    written = run(fake, [f"person {i}" for i in range(20_000)])
    assert set(written) <= set(fake.pool) and max(map(len, written)) <= fake.text_length()
    assert fake.text_length() in {len(v) for v in fake.pool}
