"""Validate a parsed policy against the live schema: every problem at once, with its path in the file."""

from __future__ import annotations

import difflib
from typing import Any

import sqlalchemy as sa

from anonymizers import OperatorContext, OperatorError, build_operator, operator_class, parse_operator_spec
from pipelines.holds import HOLD_COLUMNS, PROVENANCE
from pipelines.policy import Policy
from pipelines.store import column_kind

TIME_KINDS = ("datetime", "date")


def _columns(table: sa.Table) -> str:
    return ", ".join(table.c.keys())


def unique_columns(table: sa.Table) -> set[str]:
    """Columns that are unique on their own (a single-column unique constraint or index)."""
    found = {c.name for c in table.primary_key.columns} if len(table.primary_key.columns) == 1 else set()
    for cons in table.constraints:
        if isinstance(cons, sa.UniqueConstraint) and len(cons.columns) == 1:
            found.update(c.name for c in cons.columns)
    for idx in table.indexes:
        if idx.unique and len(idx.columns) == 1:
            found.update(c.name for c in idx.columns)
    return found


def tables_named(policy: Policy) -> list[str]:
    names = list(policy.tables)
    if policy.subjects:
        names.append(policy.subjects.table)
    if policy.legal_holds:
        names.append(policy.legal_holds.table)
    return names


def _time_column(problems: list[str], path: str, table: sa.Table, col: str, dialect: str) -> None:
    if col not in table.c:
        problems.append(f"{path}: no such column {col!r} in {table.name}; columns are {_columns(table)}")
        return
    kind = column_kind(table.c[col])
    if kind in TIME_KINDS or (dialect == "sqlite" and kind == "text"):
        return
    problems.append(f"{path}: column {table.name}.{col} is of type {table.c[col].type} ({kind}); "
                    "a retention timestamp must be a date or timestamp column")


def _null_into_not_null(op: Any, table: sa.Table, col: str, subject: str | None) -> str | None:
    """A NOT NULL column must not be given an operator that can write NULL: the UPDATE would fail mid-run."""
    column = table.c[col]
    if column.nullable:
        return None
    subject_nullable = subject is None or table.c[subject].nullable
    reason = op.writes_null(column_kind(column), subject_nullable)
    if reason is None:
        return None
    return (f"{op.name} {reason} but {table.name}.{col} is NOT NULL; give a fill value "
            '({redact: {with: "[redacted]"}}), make the column nullable, or choose an operator that '
            "never writes NULL")


def check_operator(problems: list[str], path: str, spec: Any, column: sa.Column | None,
                   context: OperatorContext | None, is_key: bool = False):
    """Build one operator for one column, recording any problem; returns the operator or None."""
    try:
        name, _params = parse_operator_spec(spec)
    except OperatorError as exc:
        problems.append(f"{path}: {exc}")
        return None
    if is_key and name != "keep":
        problems.append(f"{path}: the key column cannot be anonymized (Lethe finds rows by it); use keep")
        return None
    if context is None and operator_class(name).needs_key:
        return None  # the key problem is reported on its own; keyless operators are still checked
    try:
        op = build_operator(spec, context)
    except OperatorError as exc:
        problems.append(f"{path}: {exc}")
        return None
    if column is not None:
        kind = column_kind(column)
        if not op.accepts(kind):
            problems.append(f"{path}: {name} cannot be applied to column {column.table.name}.{column.name} of "
                            f"type {column.type} ({kind}); valid: {name} as given takes "
                            f"{', '.join(sorted(op.kinds))} columns")
            return None
        bits = _integer_bits(column) if kind == "integer" else None
        if op.integer_bits and bits is not None and bits < op.integer_bits:
            problems.append(f"{path}: {name} writes {op.integer_bits}-bit integers but column "
                            f"{column.table.name}.{column.name} is {column.type} ({bits}-bit); valid: widen it to "
                            "BIGINT, or use an operator that keeps values in range (keep, redact, bucket)")
            return None
        length = _enforced_length(column) if kind == "text" else None
        written = op.text_length() if length is not None else None  # fake's is its pool's: built only if needed
        if length is not None and written is not None and written > length:
            problems.append(f"{path}: {name} writes up to {written} characters but column {column.table.name}."
                            f"{column.name} is {column.type}; valid: widen it to VARCHAR({written}) or "
                            "TEXT, or use an operator whose results fit (mask, truncate, redact)")
            return None
    return op


def _enforced_length(column: sa.Column) -> int | None:
    """The declared length of a text column where the database enforces it (SQLite does not)."""
    if column.table.info.get("dialect") == "sqlite":
        return None
    return getattr(column.type, "length", None)


def _integer_bits(column: sa.Column) -> int | None:
    """How wide a reflected integer column is; SQLite's integers are 64-bit whatever they are declared as."""
    if column.table.info.get("dialect") == "sqlite" or isinstance(column.type, sa.BigInteger):
        return 64
    if isinstance(column.type, sa.SmallInteger):
        return 16
    return 32 if isinstance(column.type, sa.Integer) else None


def _no_such_table(lead: str, name: str, store_tables: list[str] | None, schema: str | None) -> str:
    """`lead` (the problem's first words) and what helps when `name` is no table of the store: the closest name,
    the store's own tables (not Lethe's), and for a name with a schema (`sales.orders`) how Lethe reaches
    another schema's tables.
    """
    listed = sorted(t for t in store_tables or () if not t.startswith("lethe_"))
    close = difflib.get_close_matches(name, listed, n=1)
    shown = ", ".join(listed[:_LISTED_TABLES]) + (f" and {len(listed) - _LISTED_TABLES} more"
                                                   if len(listed) > _LISTED_TABLES else "")
    message = (lead + (f"; did you mean {close[0]}?" if close else "")
               + f"; the store's tables are {shown or '(none)'}")
    if "." in name and schema is not None:
        other, table = name.split(".", 1)
        message += (f"; Lethe reads the tables of the store's current schema ({schema}), named without a schema: "
                    f"for schema {other}, name the table {table} and put {other} first on the store's search_path "
                    f"(postgresql://USER:PASSWORD@HOST/DATABASE?options=-csearch_path%3D{other})")
    return message


_LISTED_TABLES = 30


def check_against_schema(policy: Policy, tables: dict[str, sa.Table], dialect: str,
                         context: OperatorContext | None,
                         aggregate_tables: dict[str, sa.Table] | None = None, schema: str | None = None,
                         store_tables: list[str] | None = None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Return (problems, operators per table and column). `aggregate_tables`: the aggregates' tables that
    already exist in the store (reflected), which must have an aggregate's shape; `schema`: the store's current
    schema, where Lethe looks for tables (PostgreSQL); `store_tables`: every table of the store, for messages.
    """
    problems: list[str] = []
    operators: dict[str, dict[str, Any]] = {}
    for name, rule in policy.tables.items():
        path = f"tables.{name}"
        table = tables.get(name)
        if table is None:
            problems.append(_no_such_table(f"{path}: no such table in the store", name, store_tables, schema))
            continue
        if rule.key not in table.c:
            problems.append(f"{path}.key: no such column {rule.key!r}; columns are {_columns(table)}")
        else:
            pk = [c.name for c in table.primary_key.columns]
            if pk != [rule.key] and rule.key not in unique_columns(table):
                problems.append(f"{path}.key: {rule.key!r} is not the table's single-column primary key "
                                f"(primary key: {', '.join(pk) or 'none'})")
            elif pk != [rule.key] and table.c[rule.key].nullable:
                # Lethe finds, erases, holds and marks rows by their key: a row whose key is NULL would fall
                # due on every run and never be processed.
                problems.append(f"{path}.key: {rule.key!r} is unique but nullable; valid: the table's "
                                f"primary key (primary key: {', '.join(pk) or 'none'}) or a NOT NULL unique "
                                "column")
        if rule.subject is not None and rule.subject not in table.c:
            problems.append(f"{path}.subject: no such column {rule.subject!r}; columns are {_columns(table)}")
        if rule.retain is not None:
            _time_column(problems, f"{path}.retain.from", table, rule.retain.from_column, dialect)
        clashing = [c for c in table.c.keys() if c in PROVENANCE]
        if policy.legal_holds and clashing:
            problems.append(f"{path}: column(s) {', '.join(clashing)} have the names of the provenance columns a "
                            f"vault table adds ({', '.join(PROVENANCE)}), so held rows could not be moved; "
                            "valid: rename the column(s)")
        ops: dict[str, Any] = {}
        for col, spec in rule.columns.items():
            cpath = f"{path}.columns.{col}"
            if col not in table.c:
                problems.append(f"{cpath}: no such column; columns are {_columns(table)}")
                check_operator(problems, cpath, spec, None, None)
                continue
            op = check_operator(problems, cpath, spec, table.c[col], context, is_key=(col == rule.key))
            if op is not None:
                null_problem = _null_into_not_null(op, table, col, rule.subject)
                if null_problem:
                    problems.append(f"{cpath}: {null_problem}")
                if op.writes_constant() and col in unique_columns(table):
                    problems.append(f"{cpath}: {op.name} writes the same value into every anonymized row but "
                                    f"{table.name}.{col} is UNIQUE, so the second such row would fail the run; "
                                    "valid: pseudonymize (one token per value), or redact to NULL (no `with`) "
                                    "on a nullable column")
                if op.needs_subject and rule.subject is None:
                    problems.append(f"{cpath}: {op.name} shifts per subject and needs `subject:` on the table")
                ops[col] = op
        operators[name] = ops
    if policy.subjects:
        s = policy.subjects
        table = tables.get(s.table)
        if table is None:
            problems.append(_no_such_table(f"subjects.table: no such table {s.table!r}", s.table, store_tables,
                                           schema))
        else:
            if s.id not in table.c:
                problems.append(f"subjects.id: no such column {s.id!r} in {s.table}; columns are {_columns(table)}")
            _time_column(problems, "subjects.deleted_at", table, s.deleted_at, dialect)
    if policy.legal_holds:
        table = tables.get(policy.legal_holds.table)
        if table is None:
            holds = policy.legal_holds.table
            problems.append(_no_such_table(f"legal_holds.table: no such table {holds!r}", holds, store_tables, schema))
        else:
            missing = [c for c in HOLD_COLUMNS if c not in table.c]
            if missing:
                problems.append(f"legal_holds.table: {table.name} lacks column(s) {', '.join(missing)}; "
                                f"a legal-holds table has {', '.join(HOLD_COLUMNS)}")
    for agg_name, agg in policy.aggregates.items():
        _aggregate_names(problems, agg_name, agg, dialect)
        _aggregate_table(problems, agg_name, agg, (aggregate_tables or {}).get(agg_name))
        source = tables.get(agg.from_table)
        for dim, spec in agg.dimensions.items():
            dpath = f"aggregates.{agg_name}.dimensions.{dim}"
            col = spec["column"]
            if source is not None and col not in source.c:
                problems.append(f"{dpath}.column: no such column {col!r} in {agg.from_table}; "
                                f"columns are {_columns(source)}")
                continue
            op_spec = {k: v for k, v in spec.items() if k != "column"}
            if op_spec:
                check_operator(problems, dpath, op_spec, source.c[col] if source is not None else None, context)
        for dim in agg.coarsen:
            if dim not in agg.dimensions:
                problems.append(f"aggregates.{agg_name}.coarsen.{dim}: not a dimension; dimensions are "
                                f"{', '.join(agg.dimensions)}")
    return problems, operators


# Bytes of a name PostgreSQL keeps (NAMEDATALEN - 1); it cuts longer ones short, SQLAlchemy refuses some.
MAX_NAME_BYTES = {"postgresql": 63}


def _aggregate_names(problems: list[str], name: str, agg: Any, dialect: str) -> None:
    """The names Lethe gives an aggregate's table and columns must fit the database: PostgreSQL cuts a longer
    one short, so the run failed part-way creating the table (or, for a column, every run after the first was
    refused: the table it had made no longer had the aggregate's columns).
    """
    limit = MAX_NAME_BYTES.get(dialect)
    if limit is None:
        return
    too_long = [(f"aggregates.{name}", name)] if len(name.encode()) > limit else []
    too_long += [(f"aggregates.{name}.dimensions.{dim}", dim) for dim in agg.dimensions if len(dim.encode()) > limit]
    for path, long_name in too_long:
        problems.append(f"{path}: the name is {len(long_name.encode())} bytes long (UTF-8) and {dialect} keeps "
                        f"{limit} bytes of a table or column name; valid: a name of at most {limit} bytes")


def deletes_outside_policy(policy: Policy, foreign_keys: dict[str, list[dict]]) -> list[str]:
    """Foreign keys of tables the policy does not name whose ON DELETE action (CASCADE, SET NULL, SET DEFAULT)
    would make the database change their rows when Lethe deletes a row they point to (erasing it, or moving it
    to the vault): rows the policy never named would go without a ledger entry, a count in the report or a
    legal hold's protection. `foreign_keys`: each store table's reflected foreign keys.
    """
    deleting = {name for name, rule in policy.tables.items() if rule.erases or policy.legal_holds}
    problems = []
    for table, keys in sorted(foreign_keys.items()):
        if table in policy.tables or table.startswith("lethe_"):
            continue
        for fk in keys:
            action = str((fk.get("options") or {}).get("ondelete") or "").upper()
            target = fk.get("referred_table")
            if target in deleting and action in ("CASCADE", "SET NULL", "SET DEFAULT"):
                effect = "delete" if action == "CASCADE" else "change"
                columns = ", ".join(fk.get("constrained_columns") or [])
                problems.append(f"tables.{target}: deleting its rows would make the database {effect} rows of "
                                f"{table}, which the policy does not name (foreign key {table}({columns}) "
                                f"whose on-delete action is {action}), with no ledger entry, no count and no legal "
                                f"hold; valid: add {table} to the policy with the action its rows need, or make "
                                "the foreign key ON DELETE RESTRICT or NO ACTION")
    return problems


def _aggregate_table(problems: list[str], name: str, agg: Any, existing: sa.Table | None) -> None:
    """An aggregate's table is Lethe's to create and fold into: never one of Lethe's own tables, and never a
    table of the store with other columns (folding would write counts into someone else's table).
    """
    if name.lower().startswith("lethe_"):
        problems.append(f"aggregates.{name}: names starting with lethe_ are reserved for Lethe's own tables; "
                        "choose another name")
        return
    if existing is None:
        return
    expected = [*agg.dimensions, "row_count"]
    if sorted(existing.c.keys()) != sorted(expected):
        problems.append(f"aggregates.{name}: the store already has a table {name} with columns "
                        f"{_columns(existing)}, which is not this aggregate (its table has the columns "
                        f"{', '.join(expected)}); choose another name (the old table keeps the counts folded so "
                        "far, the new one starts empty), or alter the table to these columns")
        return
    # Folding adds a group per new combination of dimension values: a unique key over only some of the
    # dimensions (a table altered by hand to add one) refuses those rows part-way through every run.
    dims = set(agg.dimensions)
    keys = [{c.name for c in k.columns} for k in existing.constraints
            if isinstance(k, sa.UniqueConstraint | sa.PrimaryKeyConstraint) and len(k.columns)]
    keys += [{c.name for c in i.columns} for i in existing.indexes if i.unique]
    for key in keys:
        if not dims <= key:
            problems.append(f"aggregates.{name}: the store's table {name} has a unique key over "
                            f"{', '.join(sorted(key))} only, so folding would fail part-way as soon as two groups "
                            f"differ in {', '.join(sorted(dims - key))}; its unique key must cover every dimension "
                            f"({', '.join(agg.dimensions)}): rebuild it with one, or choose another name")
            return


DATE_SAMPLE = 100


def undated_time_columns(policy: Policy, tables: dict[str, sa.Table], conn: sa.Connection) -> list[str]:
    """On SQLite a retention or deletion timestamp is read with julianday(), whatever the column's declared type:
    a TEXT column (ISO 8601 text is how SQLite keeps dates) or a DATE or DATETIME one, which SQLite lets hold
    anything. One whose values read as no date at all (`country` named by mistake, Unix times in a DATETIME
    column) would let no row ever fall due, silently: refused when none of the first `DATE_SAMPLE` non-NULL
    values reads as a date.
    """
    named = [(f"tables.{n}.retain.from", n, r.retain.from_column) for n, r in policy.tables.items() if r.retain]
    if policy.subjects is not None:
        named.append(("subjects.deleted_at", policy.subjects.table, policy.subjects.deleted_at))
    problems = []
    for path, name, col in named:
        table = tables.get(name)
        kind = column_kind(table.c[col]) if table is not None and col in table.c else None
        if kind not in ("text", *TIME_KINDS):
            continue
        sample = sa.select(table.c[col].label("v")).where(table.c[col].is_not(None)).limit(DATE_SAMPLE).subquery()
        seen, dated = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.func.julianday(sample.c.v)))).one()
        if seen and not dated:
            held = ("text that reads as no date" if kind == "text" else
                    f"values that read as no date ({table.c[col].type} is only its declared type on SQLite)")
            problems.append(f"{path}: column {name}.{col} holds {held} (none of its first {seen} values); "
                            "a retention or deletion timestamp must be a date, a timestamp or ISO 8601 text such as "
                            "2026-06-30 or 2026-06-30T12:00:00Z (a number such as a Unix time is not read as one)")
    return problems
