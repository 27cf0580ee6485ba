"""The ledger's key digest computed by PostgreSQL equals the Python one, byte for byte.

The engine digests a chunk's keys inside PostgreSQL (no key travels to Lethe) and in Python on
SQLite; a verifier holding the ledger key recomputes either with `keys_digest`, so both must agree
for every key type, order and character set.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
import sqlalchemy as sa

from pipelines.ledger import keys_digest, keys_digest_sql
from pipelines.store import connect

CASES = [
    # integers sort as text in the digest ("10" before "9"), negative and 63-bit values included
    ("int", sa.BigInteger, [9, 10, -3, 0, 2**62, 1]),
    # text keys: non-ASCII, mixed case (code-point order, not the database's collation), empty string
    ("text", sa.Text, ["b", "B", "a", "é", "日本", "Z", "", "a b", "Ω"]),
    # UUID keys digest as their canonical lower-case text
    ("uuid", sa.Uuid, [uuid.UUID(int=i * 7919) for i in range(1, 9)]),
    # one key
    ("single", sa.BigInteger, [42]),
]


@pytest.mark.parametrize("label,type_,keys", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("key_length", [32, 100])  # HMAC hashes keys longer than its 64-byte block first
def test_sql_digest_equals_python_digest(pg_url, label, type_, keys, key_length):
    ledger_key = secrets.token_bytes(key_length)
    engine = connect(pg_url)
    table = sa.Table("digest_keys", sa.MetaData(), sa.Column("k", type_, primary_key=True))
    try:
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), [{"k": k} for k in keys])
            in_sql = conn.execute(sa.select(keys_digest_sql(ledger_key, table.c.k))).scalar_one()
            empty = conn.execute(sa.select(keys_digest_sql(ledger_key, table.c.k)).where(sa.false())).scalar_one()
    finally:
        engine.dispose()
    assert in_sql == keys_digest(ledger_key, keys)
    assert empty == keys_digest(ledger_key, [])
    assert in_sql != keys_digest(secrets.token_bytes(32), keys)  # keyed: another key gives another digest
