"""Registration aggregates: a subject's row is folded into counts just before it is erased or anonymized.

The fold runs in the same transaction as the change to the row, and a row is only ever erased or
anonymized once (erasure removes it; anonymization is marked), so each subject is counted exactly
once across re-runs, crashes and backfills. The table holds generalized dimension values and
`row_count` only: no identifier, pseudonym or free text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from anonymizers import OperatorContext, build_operator
from pipelines import ledger
from pipelines.frames import read_rows, to_python
from pipelines.policy import Aggregate

ROW_COUNT = "row_count"


def _dimension_type(source: sa.Table, spec: dict[str, Any]) -> sa.types.TypeEngine:
    op_names = [k for k in spec if k != "column"]
    col = source.c[spec["column"]]
    if op_names and op_names[0] == "generalize_date":
        return sa.DateTime() if isinstance(col.type, sa.DateTime) else sa.Date()
    if op_names and op_names[0] == "bucket":
        return sa.Float() if isinstance(col.type, (sa.Float, sa.Numeric)) else sa.BigInteger()
    if not op_names and isinstance(col.type, (sa.Integer, sa.Date, sa.DateTime, sa.Boolean)):
        return col.type.__class__()
    return sa.String(255)


def table_for(name: str, agg: Aggregate, source: sa.Table) -> sa.Table:
    """The aggregate table: one column per dimension plus `row_count`, unique over the dimensions."""
    meta = sa.MetaData()
    dims = [sa.Column(d, _dimension_type(source, spec), nullable=True) for d, spec in agg.dimensions.items()]
    return sa.Table(
        name, meta, *dims, sa.Column(ROW_COUNT, sa.BigInteger, nullable=False),
        sa.UniqueConstraint(*agg.dimensions, name=unique_key_name(name), postgresql_nulls_not_distinct=True),
    )


def unique_key_name(name: str) -> str:
    """The name of an aggregate table's unique key (and, on PostgreSQL, of its index, which shares the table's
    namespace): `<name>_dims_uq` where that fits in PostgreSQL's 63 bytes, else one derived from a digest of the
    name. Cut short to 63 characters, a 63-character table's key had the table's own name (DuplicateTable).
    """
    full = f"{name}_dims_uq"
    if len(full.encode()) <= 63:
        return full
    return f"lethe_dims_uq_{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def ensure(engine: Engine, name: str, agg: Aggregate, source: sa.Table) -> sa.Table:
    table = table_for(name, agg, source)
    table.metadata.create_all(engine)
    return table


def operators(agg: Aggregate, context: OperatorContext) -> dict[str, Any]:
    out = {}
    for dim, spec in agg.dimensions.items():
        op_spec = {k: v for k, v in spec.items() if k != "column"}
        if op_spec:
            out[dim] = build_operator(op_spec, context)
    return out


def dimension_frame(conn: Connection, source: sa.Table, key: str, keys: Sequence[object], agg: Aggregate,
                    ops: dict[str, Any]) -> pd.DataFrame:
    """The generalized dimension values of the rows about to be erased or anonymized."""
    columns = sorted({spec["column"] for spec in agg.dimensions.values()})
    rows = read_rows(conn, source, key, keys, columns)
    out = {}
    for dim, spec in agg.dimensions.items():
        values = rows[spec["column"]]
        out[dim] = ops[dim].apply(values) if dim in ops else values
    return pd.DataFrame(out, index=rows.index)


def fold(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Add each distinct combination's count to the table (upsert); returns rows folded."""
    if frame.empty:
        return 0
    dims = list(frame.columns)
    grouped = frame.astype(object).where(frame.notna(), None)
    counts: dict[tuple, int] = {}
    for combo in grouped.itertuples(index=False, name=None):
        combo = tuple(to_python(v) for v in combo)
        counts[combo] = counts.get(combo, 0) + 1
    for combo, n in counts.items():
        _add(conn, table, dict(zip(dims, combo, strict=True)), n)
    return len(frame)


def _add(conn: Connection, table: sa.Table, values: dict[str, object], n: int) -> None:
    match = [table.c[d].is_not_distinct_from(v) for d, v in values.items()]
    updated = conn.execute(sa.update(table).where(*match).values({ROW_COUNT: table.c[ROW_COUNT] + n}))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(**values, **{ROW_COUNT: n}))


def record(conn: Connection, run_id: str, name: str, n: int, digest: str) -> None:
    ledger.append(conn, run_id, name, "fold", n, digest)


def coarsen(conn: Connection, table: sa.Table, agg: Aggregate) -> int:
    """Merge groups below `min_group_size` into coarser values, one dimension at a time, in the order
    `coarsen:` lists them (e.g. ip_prefix: null, email_domain: other). Totals are unchanged.
    """
    merged = 0
    dims = list(agg.dimensions)
    for dim, replacement in agg.coarsen.items():
        small = conn.execute(sa.select(table).where(table.c[ROW_COUNT] < agg.min_group_size)).mappings().all()
        for group in small:
            if group[dim] == replacement:
                continue
            match = [table.c[d].is_not_distinct_from(group[d]) for d in dims]
            conn.execute(sa.delete(table).where(*match))
            target = {d: group[d] for d in dims} | {dim: replacement}
            _add(conn, table, target, group[ROW_COUNT])
            merged += 1
    return merged
