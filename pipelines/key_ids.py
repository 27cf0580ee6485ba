"""Which secret each pseudonymisation key id stands for, so a rotated key cannot reuse an old key id.

Tokens carry their key id (`lt1.<key_id>.…`) precisely so that keys can rotate: tokens of one id come
from one key. A new secret under the old `key_id` (the secret changed, the policy's id did not) would
silently mix two keys' tokens under one id, and the same value would get two unrelated tokens that
nothing can tell apart. So the store keeps, per key id, a fingerprint of its secret, a keyed digest of
a constant (it reveals nothing of the key, and is no key Lethe uses), recorded by a run's first change;
a run, plan or check whose key does not match the fingerprint of its key id is refused before anything
is touched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import InputError

log = logging.getLogger("lethe.key_ids")
_meta = sa.MetaData()
KEY_IDS = sa.Table(
    "lethe_key_ids", _meta,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("first_run_id", sa.String(80), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
)


def fingerprint(key: bytes) -> str:
    return hmac.new(key, b"lethe-key-id-fingerprint-v1", hashlib.sha256).hexdigest()


def check(engine: Engine, key_id: str, key: bytes, source: str | None = None) -> None:
    """InputError when the store knows `key_id` as another secret's id (read-only: nothing is written)."""
    if not sa.inspect(engine).has_table(KEY_IDS.name):
        return
    with engine.connect() as conn:
        known = conn.execute(sa.select(KEY_IDS.c.fingerprint, KEY_IDS.c.first_run_id)
                             .where(KEY_IDS.c.key_id == key_id)).first()
    if known is not None and not hmac.compare_digest(known.fingerprint, fingerprint(key)):
        raise InputError(
            f"pseudonymization.key_id: this store's tokens with key id '{key_id}' were made with another key "
            f"(first used by run {known.first_run_id}); a new key needs a new key_id, or tokens of two keys "
            "would share one id and the same value would get two tokens nobody can tell apart. Give the new "
            "key a new pseudonymization.key_id, or point pseudonymization.key back at the old secret",
            source=source)


def record(engine: Engine, key_id: str, key: bytes, run_id: str) -> None:
    """Remember which secret `key_id` stands for (once, by the first run that uses it on this store)."""
    try:
        _meta.create_all(engine, tables=[KEY_IDS])
    except sa.exc.DBAPIError as exc:  # a role that lost CREATE after its first run (before this table existed)
        log.warning("cannot create %s (%s): a new key under an old key_id goes unnoticed on this store until "
                    "it exists", KEY_IDS.name, type(exc.orig).__name__)
        return
    with engine.begin() as conn:
        if conn.execute(sa.select(KEY_IDS.c.key_id).where(KEY_IDS.c.key_id == key_id)).first() is None:
            conn.execute(KEY_IDS.insert().values(
                key_id=key_id, fingerprint=fingerprint(key), first_run_id=run_id,
                recorded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))
