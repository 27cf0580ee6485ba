"""Connections to the store and the vault, reflection, and the few dialect differences Lethe needs.

Engines hide bound parameters from error messages: a failed statement must never echo a personal
value or the pseudonymisation key into a log or an exception.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from anonymizers import sql_secrets
from pipelines import date_values
from pipelines.errors import InputError, UnreachableError

COLUMN_KINDS = ("text", "integer", "float", "date", "datetime", "boolean", "binary", "ip", "other")


def resolve_url(flag: str | None, env_var: str, from_policy: str | None, what: str) -> str:
    """CLI flag, then environment, then the policy: the SPEC's order of precedence."""
    url = flag or os.environ.get(env_var) or from_policy
    if not url:
        raise InputError(f"no {what} URL: give --{what}, set {env_var} or put `{what}:` in the policy")
    parse_url(url, what)
    return url


def parse_url(url: str, what: str) -> URL:
    """The URL parsed, or InputError: not a SQLAlchemy URL, or a dialect or driver SQLAlchemy cannot load."""
    try:
        parsed = make_url(url)
    except Exception:
        raise InputError(f"the {what} URL is not a SQLAlchemy URL (dialect+driver://user:pass@host/db "
                         f"or sqlite:///path)") from None
    _check_dialect(parsed, what)
    return parsed


def redacted(url: str) -> str:
    """A URL safe to print: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def connect(url: str, *, writer: bool = True, create: bool = False) -> Engine:
    """An engine with the settings Lethe relies on.

    On SQLite a writer engine opens every transaction with BEGIN IMMEDIATE, so a read-then-write
    (the ledger head, an aggregate upsert) cannot interleave with another process; a reader engine
    (writer=False) takes plain snapshots, so it can stream due keys while a writer commits chunks.
    A SQLite file is created (with its directory) only when `create`, as for the vault: SQLite would
    otherwise make an empty database of a mistyped store path, and a run, a check or a ledger
    verification would then report on nothing ("ledger: empty") instead of refusing.
    """
    parsed = make_url(url)
    _check_dialect(parsed)
    if parsed.get_backend_name() == "sqlite":
        if create:
            make_sqlite_dir(url)
        elif (path := _sqlite_file(parsed)) is not None and not path.is_file():
            raise InputError(f"no SQLite database at {path}: the store must exist (check the path; "
                             f"`lethe seed --store URL` creates the reference dataset)")
        engine = sa.create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy, not pysqlite, decides when to BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    if parsed.get_backend_name() == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _utc(dbapi_conn, _record) -> None:
            # Every session in UTC, whatever the server's or the database's TimeZone: date_trunc on a
            # timestamptz (generalize_date) and the zone timestamptz values are read back in both follow it,
            # and the SPEC's days, months and years are UTC ones.
            cur = dbapi_conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.close()
            dbapi_conn.commit()
            date_values.infinity_as_text(dbapi_conn)

    sql_secrets.install(engine)  # keys reach SQL forms by COPY, never as logged statement parameters
    return engine


def _check_dialect(parsed: URL, what: str = "database") -> None:
    """A URL whose dialect or driver SQLAlchemy cannot load is bad input, not a traceback."""
    try:
        parsed.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise InputError(f"the {what} URL names an unknown database dialect or driver "
                         f"{parsed.drivername!r}; valid: sqlite:///PATH or "
                         "postgresql://USER:PASSWORD@HOST/DATABASE") from None


def check_vault(vault_url: str, store_url: str, store: Engine | None = None) -> None:
    """Refuse, before anything is written, a vault the run could not use: not a URL, an unknown dialect, the
    store itself (held rows must leave the store), a server that does not answer, or a SQLite file that
    cannot be created. Only reads: a SQLite vault that does not exist yet is created by the first move.
    """
    vault = parse_url(vault_url, "vault")
    if _same_database(vault, make_url(store_url)):
        raise InputError(f"the vault URL {redacted(vault_url)} names the store itself; data under legal hold "
                         "must move to a separate database: give another --vault, LETHE_VAULT_URL or `vault:`")
    if vault.get_backend_name() == "sqlite":
        path = _sqlite_file(vault)
        if path is None or path.is_file():
            return
        if path.exists():
            raise InputError(f"the vault path {path} is not a SQLite file; give another --vault")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"cannot create the vault at {path}: {parent} is not a writable directory; "
                             "give a writable --vault path")
        return
    engine = connect(vault_url, writer=False)
    try:
        reach(engine, vault_url, "vault")
        reached = _identity(engine) if store is not None else None
        if reached is not None and reached == _identity(store):
            raise InputError(f"the vault URL {redacted(vault_url)} reaches the store's own database (another "
                             "spelling of its host or user); data under legal hold must move to a separate "
                             "database: give another --vault, LETHE_VAULT_URL or `vault:`")
    finally:
        engine.dispose()


def _identity(engine: Engine) -> tuple | None:
    """Which database a PostgreSQL engine reaches, whatever the URL's spelling: the database, the server's port
    and the instant its postmaster started (readable by every role).
    """
    if engine.dialect.name != "postgresql":
        return None
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(sa.text(
                "SELECT current_database(), inet_server_port(), pg_postmaster_start_time()")).one())
    except sa.exc.DBAPIError:
        return None


def _same_database(a: URL, b: URL) -> bool:
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        pa, pb = _sqlite_file(a), _sqlite_file(b)
        return pa is not None and pb is not None and pa.resolve() == pb.resolve()
    return ((a.host or "localhost"), a.port, a.database) == ((b.host or "localhost"), b.port, b.database)


def reach(engine: Engine, url: str, what: str = "store") -> Engine:
    """Connect once now: a database that cannot be reached is bad input (exit 2) naming its URL, not a
    traceback later, and not, for `lethe ledger verify`, an exit 1 that reads as a broken chain.
    """
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise unreachable(url, exc, what) from None
    return engine


def unreachable(url: str, exc: sa.exc.DBAPIError, what: str = "store") -> UnreachableError:
    return UnreachableError(f"cannot reach the {what} at {redacted(url)} ({type(exc.orig).__name__})")


def make_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite database about to be created (the vault, `lethe seed`)."""
    parsed = make_url(url)
    path = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_file(parsed: URL) -> Path | None:
    """The file a SQLite URL names; None for an in-memory database or a `file:` URI (SQLite's own rules)."""
    db = parsed.database
    if not db or db == ":memory:" or parsed.query.get("uri") or db.startswith("file:"):
        return None
    return Path(db)


def enable_wal(engine: Engine) -> None:
    """Put a SQLite database in WAL mode, so readers never wait for a writer's chunk (the mode is kept in
    the file). Called by the first write of a run (taking the store lock, creating a vault table), not
    on connect: commands that only read — plan, check, a run refused for bad input — leave the file
    byte-identical.
    """
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()  # outside any transaction: the journal mode cannot change inside one
    try:
        cur = raw.cursor()
        if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.close()
    finally:
        raw.close()


def reflect(engine: Engine, names: list[str]) -> dict[str, sa.Table]:
    """Reflect the named tables that exist; missing ones are simply absent from the result."""
    existing = set(sa.inspect(engine).get_table_names())
    meta = sa.MetaData()
    if engine.dialect.name == "sqlite":
        sa.event.listen(meta, "column_reflect", date_values.lenient_sqlite_dates)
    present = [n for n in names if n in existing]
    if present:
        meta.reflect(bind=engine, only=present)
    for n in present:
        meta.tables[n].info["dialect"] = engine.dialect.name  # lets key_in pick the dialect's fast form
    if present and engine.dialect.name == "sqlite":
        _add_inline_unique(engine, [meta.tables[n] for n in present])
    return {n: meta.tables[n] for n in present}


def _add_inline_unique(engine: Engine, tables: list[sa.Table]) -> None:
    """Add SQLite's column-level UNIQUE constraints (`email TEXT UNIQUE`), which SQLAlchemy does not reflect:
    SQLite keeps them as automatic indexes whose origin is 'u'. Policy checks rely on knowing them.
    """
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        for table in tables:
            known = {tuple(c.name for c in k.columns) for k in table.constraints if isinstance(k, sa.UniqueConstraint)}
            for index in conn.exec_driver_sql(f"PRAGMA index_list({quote(table.name)})").mappings():
                if index["origin"] != "u" or not index["unique"]:
                    continue
                info = conn.exec_driver_sql(f"PRAGMA index_info({quote(index['name'])})").mappings()
                columns = tuple(row["name"] for row in info)
                if columns not in known and all(c in table.c for c in columns):
                    table.append_constraint(sa.UniqueConstraint(*(table.c[c] for c in columns)))


def column_kind(column: sa.Column) -> str:
    """Map a reflected column type onto the kinds operators declare they accept."""
    t = column.type
    checks = [
        (sa.Boolean, "boolean"), (sa.DateTime, "datetime"), (sa.Date, "date"), (sa.Integer, "integer"),
        (sa.Numeric, "float"), (sa.Float, "float"), (sa.LargeBinary, "binary"), (sa.Uuid, "other"),
        (sa.String, "text"), (sa.Enum, "text"),
    ]
    for cls, kind in checks:
        if isinstance(t, cls):
            return kind
    if isinstance(t, sa.types.NullType):
        return "text"  # SQLite columns declared without a type hold anything; treat as text
    name = type(t).__name__.upper()
    if "TIMESTAMP" in name:
        return "datetime"
    if "CHAR" in name or "TEXT" in name or "CITEXT" in name:
        return "text"
    if name in ("INET", "CIDR"):
        return "ip"  # PostgreSQL's address types
    return "other"


def comparable(a: sa.ColumnElement, b: sa.ColumnElement) -> bool:
    """Whether two columns' values compare as they are: the same kind, or both numbers. PostgreSQL has no
    operator between text and a number or a UUID (an id kept as text in one table and as BIGINT in another).
    """
    numbers = {"integer", "float"}
    kinds = {column_kind(a), column_kind(b)}
    return len(kinds) == 1 or kinds <= numbers


def key_in(column: sa.ColumnElement, keys: Sequence[object]) -> sa.ColumnElement[bool]:
    """`column IN keys` with the whole list as ONE bound parameter where the dialect allows it.

    Thousands of separate parameters cost more to render and parse than the statement costs to run
    (measured in benchmarks/README.md): PostgreSQL gets `= ANY(array)`, SQLite `IN (SELECT value FROM
    json_each(?))` for integer and text keys; other key types fall back to an expanding IN.
    """
    keys = list(keys)
    sample = next((k for k in keys if k is not None), None)
    if _dialect_of(column) == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.literal(keys, ARRAY(column.type)))
    if _dialect_of(column) == "sqlite" and isinstance(sample, (int, str)) and not isinstance(sample, bool):
        values = sa.select(sa.column("value")).select_from(sa.func.json_each(sa.literal(json.dumps(keys))))
        return column.in_(values.scalar_subquery())
    return column.in_(keys)


def _dialect_of(column: sa.ColumnElement) -> str | None:
    """The dialect a reflected column's table was loaded from (set by `reflect`)."""
    table = getattr(column, "table", None)
    return table.info.get("dialect") if table is not None and hasattr(table, "info") else None


def widen_to_text(engine: Engine, table: str, column: str) -> None:
    """On PostgreSQL, make a column of one of Lethe's own tables TEXT if an earlier version created it as
    VARCHAR(n): keys and subject ids longer than that failed every run. A catalog change, no rewrite.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        limited = conn.execute(sa.text(
            "SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = :t AND column_name = :c"), {"t": table, "c": column}).scalar()
        if limited is not None:
            quote = engine.dialect.identifier_preparer.quote
            conn.execute(sa.text(f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} TYPE text"))


def key_text(column: sa.ColumnElement) -> sa.ColumnElement:
    """A key or subject value as text, the form the legal-holds table stores it in."""
    return sa.cast(column, sa.Text)


def in_key_texts(column: sa.ColumnElement, texts: Sequence[str] | sa.Select) -> sa.ColumnElement[bool]:
    """`column` is one of these keys held as text (`key_text`'s form): a list, or a SELECT of one text column.

    The text is cast to the column's type rather than the column to text, so the column stays bare and its
    index usable; an SQLite column without a type compares as text.
    """
    untyped = isinstance(column.type, sa.types.NullType)
    if isinstance(texts, sa.Select):
        if untyped:
            return key_text(column).in_(texts.scalar_subquery())
        typed = texts.with_only_columns(sa.cast(texts.selected_columns[0], column.type))
        return column.in_(typed.scalar_subquery())
    if untyped:
        return key_text(column).in_(list(texts))
    return column.in_([sa.cast(sa.literal(t, sa.String), column.type) for t in texts])


def key_ranges(engine: Engine, column: sa.ColumnElement, where: sa.ColumnElement[bool],
               size: int) -> Iterator[tuple[object | None, object | None]]:
    """Consecutive ranges `lo < column <= hi` of `size` rows matching `where` each, in `column`'s order;
    the last is open-ended (hi None), and there are none when no row matches.

    Each bound is one short read (the `size`-th value after the last bound, by the column's index) on
    its own connection, so no snapshot outlives a range and no key list travels to Lethe. Bounds are
    read lazily: a caller that changes the rows of one range before asking for the next sees the
    table as it is then. Only the first read checks that a short last range holds any row at all; after
    a full range, the open-ended rest is handed out unchecked, because whoever works on it walks the
    same keys again (the check cost a whole walk, 80 ms at 1M rows, benchmarks/README.md).
    """
    lo = None
    while True:
        rest = sa.select(column).where(where, *([column > lo] if lo is not None else []))
        with engine.connect() as conn:
            hi = conn.execute(rest.order_by(column).offset(size - 1).limit(1)).scalar()
            if hi is None and lo is None and conn.execute(rest.order_by(column).limit(1)).first() is None:
                return
        yield lo, hi
        if hi is None:
            return
        lo = hi
