"""The tamper-evident ledger: an append-only hash chain in the store, one entry per action.

Each entry's hash covers its fields and the previous entry's hash, so altering, removing or
reordering any entry breaks every hash after it. Removing the newest entries breaks no link, so the
chain's head (last seq and hash) is also kept in `lethe_ledger_head`, updated in the same
transaction as each append: a chain that ends before its recorded head was cut short, and the next
entry links to the recorded head, so a run after the cut leaves a gap rather than hiding it. Row keys
are recorded only as one keyed digest per entry, never as keys. Entries are appended inside the
caller's transaction, so an entry exists exactly when the change it records was committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from anonymizers.sql_secrets import secret
from pipelines.key_ids import KEY_IDS

GENESIS = "0" * 64
_meta = sa.MetaData()
LEDGER = sa.Table(
    "lethe_ledger", _meta,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("keys_digest", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)
HEAD = sa.Table(
    "lethe_ledger_head", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1: one row
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)
_ADVISORY_LOCK_ID = 0x1E7E_1ED6  # serialises appends from parallel tasks on PostgreSQL


def ensure(engine: Engine) -> None:
    _meta.create_all(engine, tables=[LEDGER, HEAD])


def removed_after(conn: Connection) -> str | None:
    """When both ledger tables are gone from a store Lethe has changed before, the id of the first run that
    changed it; else None. Every run creates the ledger before its first change and then records its key id
    in `lethe_key_ids`, so a store with a recorded key id and no ledger had its ledger removed. Dropping both
    tables read as "no run has written to this store yet", and the next run started a new chain over it.
    """
    inspector = sa.inspect(conn)
    if inspector.has_table(LEDGER.name) or inspector.has_table(HEAD.name) or not inspector.has_table(KEY_IDS.name):
        return None
    return conn.execute(sa.select(KEY_IDS.c.first_run_id).order_by(KEY_IDS.c.recorded_at).limit(1)).scalar()


def removed_message(first_run_id: str) -> str:
    return (f"the ledger tables ({LEDGER.name}, {HEAD.name}) were removed from this store, which Lethe changed "
            f"before (run {first_run_id}, recorded in {KEY_IDS.name})")


def keys_digest(ledger_key: bytes, keys: Iterable[object]) -> str:
    """A keyed digest of the row keys: proves which rows without storing them."""
    texts = sorted(str(k) for k in keys)  # every key as UTF-8 followed by a NUL, in code-point order
    message = "\x00".join(texts).encode("utf-8") + (b"\x00" if texts else b"")
    return hmac.new(ledger_key, message, hashlib.sha256).hexdigest()


def keys_digest_sql(ledger_key: bytes, keys: sa.ColumnElement) -> sa.ColumnElement[str]:
    """`keys_digest` as a PostgreSQL aggregate over `keys`, so a chunk's keys never travel to Lethe.

    The same bytes as the Python form: every key as UTF-8 text followed by a NUL, in code-point order
    (COLLATE "C" compares bytes, and UTF-8 byte order is code-point order), under HMAC-SHA256 spelled
    out with the built-in sha256() (no extension needed): sha256(K^opad || sha256(K^ipad || message)).
    The padded keys are read from the session (`anonymizers.sql_secrets`), never sent in the statement.
    """
    from sqlalchemy.dialects.postgresql import aggregate_order_by

    block = ledger_key if len(ledger_key) <= 64 else hashlib.sha256(ledger_key).digest()
    block = block.ljust(64, b"\x00")
    ipad, opad = bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)
    text = sa.cast(keys, sa.Text)
    blob = sa.func.convert_to(text, "UTF8", type_=sa.LargeBinary)
    message = sa.func.coalesce(
        sa.func.string_agg(blob.op("||")(sa.literal(b"\x00", sa.LargeBinary)),
                           aggregate_order_by(sa.literal(b"", sa.LargeBinary), text.collate("C")),
                           type_=sa.LargeBinary),
        sa.literal(b"", sa.LargeBinary))
    inner = sa.func.sha256(secret(ipad).op("||")(message), type_=sa.LargeBinary)
    outer = sa.func.sha256(secret(opad).op("||")(inner), type_=sa.LargeBinary)
    return sa.func.encode(outer, "hex", type_=sa.String)


def _entry_hash(prev_hash: str, fields: dict) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _fields(row: dict) -> dict:
    return {k: row[k] for k in ("seq", "run_id", "recorded_at", "table_name", "action", "row_count",
                                "keys_digest")}


def serialize(conn: Connection) -> None:
    """Hold the store's append lock until the caller's transaction ends (PostgreSQL; SQLite transactions
    already start with BEGIN IMMEDIATE). Parallel partitions call this before read-modify-writes such
    as aggregate upserts, so they neither race nor deadlock on the ledger head.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})


def append(conn: Connection, run_id: str, table_name: str, action: str, row_count: int, digest: str) -> str:
    """Append one entry inside the caller's transaction; returns its hash."""
    serialize(conn)
    head = _read_head(conn) or conn.execute(
        sa.select(LEDGER.c.seq, LEDGER.c.entry_hash).order_by(LEDGER.c.seq.desc()).limit(1)
    ).first()  # the last entry itself only before the first head record (an empty or older ledger)
    seq, prev = (head.seq + 1, head.entry_hash) if head else (1, GENESIS)
    row = {"seq": seq, "run_id": run_id, "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
           "table_name": table_name, "action": action, "row_count": int(row_count), "keys_digest": digest}
    row["prev_hash"] = prev
    row["entry_hash"] = _entry_hash(prev, _fields(row))
    conn.execute(LEDGER.insert().values(**row))
    if not conn.execute(HEAD.update().where(HEAD.c.id == 1).values(seq=seq, entry_hash=row["entry_hash"])).rowcount:
        conn.execute(HEAD.insert().values(id=1, seq=seq, entry_hash=row["entry_hash"]))
    return row["entry_hash"]


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head: str
    first_bad: int | None = None  # None when no entry can be read (a column of the ledger is gone)
    reason: str = ""


def _missing_columns(inspector: sa.Inspector, table: sa.Table) -> list[str]:
    present = {c["name"] for c in inspector.get_columns(table.name)}
    return [c.name for c in table.columns if c.name not in present]


def _read_head(conn: Connection) -> sa.Row | None:
    return conn.execute(sa.select(HEAD.c.seq, HEAD.c.entry_hash).where(HEAD.c.id == 1)).first()


def verify(conn: Connection) -> Verification:
    """Walk the chain in order; the first entry whose link or hash does not match is named. Then the
    chain must end at the recorded head: entries removed from the end, or added by hand, are named too.
    A ledger table that lost a column, or a head record that is not a number and a hash, is broken too,
    not an error: the ledger is what compliance staff read, and it was changed by someone other than Lethe.
    """
    prev, expected_seq, count = GENESIS, 1, 0
    removed = removed_after(conn)
    if removed is not None:
        return Verification(False, 0, prev, 1, removed_message(removed))
    inspector = sa.inspect(conn)
    for table in (LEDGER, HEAD):
        missing = _missing_columns(inspector, table) if inspector.has_table(table.name) else []
        if missing:
            return Verification(False, 0, prev, None, f"{table.name} has no column {', '.join(missing)}")
    if inspector.has_table(LEDGER.name):
        for row in conn.execute(sa.select(LEDGER).order_by(LEDGER.c.seq)).mappings():
            count += 1
            if row["seq"] != expected_seq:
                return Verification(False, count, prev, row["seq"], f"entry {expected_seq} is missing")
            if row["prev_hash"] != prev:
                return Verification(False, count, prev, row["seq"], "its link to the previous entry is broken")
            if _entry_hash(prev, _fields(dict(row))) != row["entry_hash"]:
                return Verification(False, count, prev, row["seq"], "its content does not match its hash")
            prev, expected_seq = row["entry_hash"], expected_seq + 1
    head = _read_head(conn) if inspector.has_table(HEAD.name) else None
    last = expected_seq - 1
    if head is None:
        if count:
            return Verification(False, count, prev, last, "the chain's head record (lethe_ledger_head) is missing")
    elif not isinstance(head.seq, int) or not isinstance(head.entry_hash, str):
        return Verification(False, count, prev, last, "the chain's head record (lethe_ledger_head) is not an "
                                                      "entry number and a hash")
    elif head.seq > last:
        removed = (f"entry {head.seq} at the end of the chain was" if head.seq == last + 1
                   else f"entries {last + 1} to {head.seq} at the end of the chain were")
        return Verification(False, count, prev, last + 1, f"{removed} removed")
    elif head.seq < last:
        return Verification(False, count, prev, head.seq + 1, "it was added after the chain's recorded head")
    elif head.entry_hash != prev:
        return Verification(False, count, prev, last, "it does not match the chain's recorded head")
    return Verification(True, count, prev)


def summary(conn: Connection, run_id: str) -> dict:
    """Entries written by one run, and the chain head, for the report."""
    n = conn.execute(sa.select(sa.func.count()).where(LEDGER.c.run_id == run_id)).scalar_one()
    head = conn.execute(sa.select(LEDGER.c.entry_hash).order_by(LEDGER.c.seq.desc()).limit(1)).scalar()
    return {"entries": int(n), "head": head or GENESIS}


def run_totals(conn: Connection, run_id: str) -> dict[tuple[str, str], int]:
    """Rows one run changed, per (table, action), as its entries recorded them."""
    rows = conn.execute(
        sa.select(LEDGER.c.table_name, LEDGER.c.action, sa.func.sum(LEDGER.c.row_count))
        .where(LEDGER.c.run_id == run_id).group_by(LEDGER.c.table_name, LEDGER.c.action)
    ).all()
    return {(table, action): int(total) for table, action, total in rows}


def vault_balance(conn: Connection) -> dict[str, int]:
    """Rows per table the ledger records as moved to the vault and not released since."""
    sign = sa.case((LEDGER.c.action == "move_to_vault", 1), else_=-1)
    rows = conn.execute(
        sa.select(LEDGER.c.table_name, sa.func.sum(sign * LEDGER.c.row_count))
        .where(LEDGER.c.action.in_(["move_to_vault", "release_erase", "release_anonymize"]))
        .group_by(LEDGER.c.table_name)
    ).all()
    return {name: int(total) for name, total in rows}


def folded_totals(conn: Connection) -> dict[str, int]:
    """Rows folded per aggregate, as the ledger recorded them."""
    rows = conn.execute(
        sa.select(LEDGER.c.table_name, sa.func.sum(LEDGER.c.row_count))
        .where(LEDGER.c.action == "fold").group_by(LEDGER.c.table_name)
    ).all()
    return {name: int(total) for name, total in rows}
