"""Keys that SQL forms need, kept out of the statements and their parameters.

PostgreSQL logs statements with their bind parameters (`log_min_duration_statement` catches any slow
chunk UPDATE, `log_statement`, auto_explain): a key passed as a parameter would be written to the server
log in full. A SQL form therefore reads each key from a session-local temporary table,
`pg_temp.lethe_secrets`, by a name derived from the key (not secret); an engine with `install` fills
that table by COPY right before any statement naming it, inside that statement's transaction. COPY's
data is never logged, and the table is emptied at the end of every transaction (ON COMMIT DELETE ROWS)
and vanishes with the session.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

CREATE = ("CREATE TEMPORARY TABLE IF NOT EXISTS lethe_secrets (name text NOT NULL, value bytea NOT NULL) "
          "ON COMMIT DELETE ROWS")
COPY = "COPY pg_temp.lethe_secrets (name, value) FROM STDIN"
_PREFIX = "lethe_secret_"
_known: dict[str, bytes] = {}  # name -> value, for this process's statements

_table = sa.table("lethe_secrets", sa.column("name", sa.Text), sa.column("value", sa.LargeBinary), schema="pg_temp")


def secret(value: bytes) -> ColumnElement:
    """`value` as a PostgreSQL statement reads it: a one-row subquery (evaluated once per statement)."""
    name = _PREFIX + hashlib.sha256(b"lethe-secret-name\x00" + value).hexdigest()[:24]
    _known[name] = value
    # The name is inlined (a literal of hex digits) so the engine sees from the text which keys to load.
    inlined = sa.literal(name, sa.Text).compile(compile_kwargs={"literal_binds": True})
    return (sa.select(_table.c.value).where(_table.c.name == sa.literal_column(str(inlined), sa.Text))
            .limit(1).scalar_subquery())


def named_in(statement: str) -> list[tuple[str, bytes]]:
    """The secrets a statement reads, to load before it runs."""
    if _PREFIX not in statement:
        return []
    return [(name, value) for name, value in _known.items() if name in statement]


def install(engine: Engine) -> None:
    """Make a PostgreSQL engine load the secrets each statement reads just before running it."""
    if engine.dialect.name == "postgresql":
        sa.event.listen(engine, "before_cursor_execute", _load)


def _load(conn, cursor, statement, parameters, context, executemany) -> None:
    needed = named_in(statement)
    if not needed:
        return
    with cursor.connection.cursor() as cur:
        cur.execute(CREATE)
        with cur.copy(COPY) as copy:
            for row in needed:
                copy.write_row(row)
