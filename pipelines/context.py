"""Everything a run needs, resolved and validated before any data is touched."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets as pysecrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from anonymizers import OperatorContext, OperatorError
from pipelines import key_ids, ledger
from pipelines import store as stores
from pipelines.durations import as_of_instant
from pipelines.errors import InputError, PolicyError
from pipelines.holds import Hold, load_active
from pipelines.policy import Policy, load_policy
from pipelines.schema_check import check_against_schema, deletes_outside_policy, tables_named, undated_time_columns
from pipelines.secrets import SecretError, resolve
from pipelines.workers import resolve_workers


def new_run_id(as_of: dt.date, dry_run: bool = False) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{'plan' if dry_run else 'run'}-{as_of.isoformat()}-{stamp}-{pysecrets.token_hex(3)}"


def safe_run_id(text: str) -> str:
    """Airflow run ids carry ':' and '+'; keep a run id usable as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


@dataclass
class RunContext:
    policy: Policy
    store_url: str
    vault_url: str | None
    store: Engine
    as_of: dt.date
    run_id: str
    dry_run: bool
    key: bytes = field(repr=False)
    operators: dict[str, dict[str, Any]]
    tables: dict[str, sa.Table]
    holds: list[Hold]
    now: dt.datetime
    workers: int = 1  # concurrent chunk transactions per table (PostgreSQL range chunks; see apply.py)
    _vault: Engine | None = None

    @property
    def dialect(self) -> str:
        return self.store.dialect.name

    @property
    def instant(self) -> dt.datetime:
        return as_of_instant(self.as_of)

    @property
    def ledger_key(self) -> bytes:
        """A sub-key for hashing row keys in the ledger: never the pseudonymisation key itself."""
        return hmac.new(self.key, b"lethe-ledger-v1", hashlib.sha256).digest()

    @property
    def vault(self) -> Engine:
        if self._vault is None:
            if not self.vault_url:
                raise InputError("rows under legal hold are due but no vault is configured: give --vault, "
                                 "set LETHE_VAULT_URL or put `vault:` in the policy")
            self._vault = stores.connect(self.vault_url, create=True)  # Lethe creates the vault on first use
        return self._vault

    def has_vault(self) -> bool:
        return bool(self.vault_url)

    def dispose(self) -> None:
        self.store.dispose()
        if self._vault is not None:
            self._vault.dispose()


def operator_context(policy: Policy) -> OperatorContext:
    try:
        key = resolve(policy.pseudonymization.key)
    except SecretError as exc:
        raise InputError(f"pseudonymization.key: {exc}", source=policy.source) from None
    try:
        return OperatorContext(key=key, key_id=policy.pseudonymization.key_id)
    except OperatorError as exc:
        raise InputError(f"pseudonymization: {exc}", source=policy.source) from None


def validate(policy: Policy, engine: Engine, context: OperatorContext | None) -> tuple[dict, dict]:
    """Reflect the live schema and check the policy against it; raises PolicyError with every problem."""
    tables = stores.reflect(engine, tables_named(policy))
    aggregate_tables = stores.reflect(engine, list(policy.aggregates))
    schema = sa.inspect(engine).default_schema_name if engine.dialect.name == "postgresql" else None
    problems, operators = check_against_schema(policy, tables, engine.dialect.name, context, aggregate_tables,
                                               schema, sa.inspect(engine).get_table_names())
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            problems += undated_time_columns(policy, tables, conn)
    else:  # SQLite enforces foreign keys only on connections that ask (PRAGMA foreign_keys); Lethe's do not
        foreign_keys = {table: keys for (_schema, table), keys in sa.inspect(engine).get_multi_foreign_keys().items()}
        problems += deletes_outside_policy(policy, foreign_keys)
    if problems:
        raise PolicyError(problems, source=policy.source)
    return tables, operators


def _check_ledger_not_removed(engine: sa.Engine) -> None:
    """A run would start a new ledger over a removed one, and the new chain would verify: refuse instead."""
    with engine.connect() as conn:
        removed = ledger.removed_after(conn)
    if removed is not None:
        raise InputError(f"{ledger.removed_message(removed)}. A run does not start a new ledger over a removed "
                         f"one: restore {ledger.LEDGER.name} and {ledger.HEAD.name} from a backup of this store")


def build(policy_path: str | Path, as_of: dt.date, *, dry_run: bool = False, store: str | None = None,
          vault: str | None = None, run_id: str | None = None, now: dt.datetime | None = None,
          workers: int | None = None) -> RunContext:
    """Load, resolve and validate everything; any problem raises InputError before data is touched."""
    policy = load_policy(policy_path)
    worker_count = resolve_workers(workers)
    context = operator_context(policy)
    store_url = stores.resolve_url(store, "LETHE_STORE_URL", policy.store, "store")
    vault_url = vault or os.environ.get("LETHE_VAULT_URL") or policy.vault
    engine = stores.connect(store_url)
    if vault_url:
        try:
            stores.check_vault(vault_url, store_url, engine)
        except InputError:
            engine.dispose()
            raise
    try:
        tables, operators = validate(policy, engine, context)
        key_ids.check(engine, context.key_id, context.key, source=policy.source)
        if not dry_run:
            _check_ledger_not_removed(engine)
        now = now or dt.datetime.now(dt.UTC)
        holds: list[Hold] = []
        if policy.legal_holds:
            with engine.connect() as conn:
                holds = load_active(conn, tables[policy.legal_holds.table], now,
                                    store_tables=set(sa.inspect(conn).get_table_names()))
        if holds and not vault_url and not dry_run:
            raise InputError("legal holds are active but no vault is configured: due rows under hold must "
                             "move to a separate database; give --vault, set LETHE_VAULT_URL or put `vault:` "
                             "in the policy")
    except (InputError, sa.exc.OperationalError) as exc:
        engine.dispose()
        if isinstance(exc, sa.exc.OperationalError):
            raise stores.unreachable(store_url, exc) from None
        raise
    return RunContext(policy=policy, store_url=store_url, vault_url=vault_url, store=engine, as_of=as_of,
                      run_id=run_id or new_run_id(as_of, dry_run), dry_run=dry_run, key=context.key,
                      operators=operators, tables=tables, holds=holds, now=now,
                      workers=worker_count)
