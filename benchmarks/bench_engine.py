"""The retention engine against hand-written set-based SQL and row-by-row statements, side by side.

For each backend and size the reference dataset is seeded once into a template; every contender
starts from an identical copy of it (SQLite: a file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE)
and makes the same mutations, those of benchmarks/engine_policy.yaml as of 2026-06-30:

  access_logs  DELETE the rows with ts older than 90 days                       (~38% of all rows)
  orders       UPDATE rows older than 7 years: email := HMAC token, addresses := '[redacted]'
  accounts     UPDATE accounts deleted more than 30 days ago: email := HMAC token, password_hash
               := '[redacted]', signup_ip := NULL

Contenders, each in its own process (peak RSS is that process's VmHWM, read at its end):
  lethe     pipelines.runner.run() (plan, apply in LETHE_CHUNK_SIZE-row chunk transactions, verification,
            report); then a second run over the swept store, which must change nothing (after a
            VACUUM ANALYZE on PostgreSQL, autovacuum's work)
  sql       (a) one hand-written statement per rule, one transaction each; PostgreSQL uses
            pgcrypto's hmac(), SQLite a Python HMAC registered with create_function
  rowwise   (b) SELECT the due rows, then one UPDATE/DELETE statement per row with the new values
            computed in Python, commit per 1,000 rows (how Fides' erasure connectors work);
            with --sample N only the first N due rows of each table, extrapolated per table

After every full contender the store's content is digested (access_logs count; orders and accounts
row by row) and must equal Lethe's, so all three did the same thing.

Run from the project root:
    .venv/bin/python benchmarks/bench_engine.py                                   # 1M rows, both backends
    .venv/bin/python benchmarks/bench_engine.py --rows 10000000 --sample 20000    # 10M, rowwise sampled
Options: --backend sqlite|postgresql|both, --profile DIR (cProfile of an extra, untimed Lethe run),
--json FILE (results), --workdir DIR (where the SQLite files go; default a temporary directory),
--workers N (Lethe's concurrent chunk transactions on PostgreSQL; default Lethe's own, 2).
The pseudonymisation key is random per invocation (LETHE_PSEUDONYM_KEY in the children's environment).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POLICY = ROOT / "benchmarks" / "engine_policy.yaml"
AS_OF = dt.date(2026, 6, 30)
KEY_ENV = "LETHE_PSEUDONYM_KEY"
KEY_ID = "bench"
TOKEN_PREFIX = f"lt1.{KEY_ID}."
REDACTED = "[redacted]"
BATCH = 1000  # rowwise: rows per commit

# The policy's cutoffs as of AS_OF (90d, 7y calendar years, 30d grace), as stored timestamps.
_MIDNIGHT = dt.datetime.combine(AS_OF, dt.time())
CUTOFF = {
    "access_logs": _MIDNIGHT - dt.timedelta(days=90),
    "orders": _MIDNIGHT.replace(year=AS_OF.year - 7),
    "accounts": _MIDNIGHT - dt.timedelta(days=30),
}
# table -> (key, timestamp column, action)
RULES = {
    "access_logs": ("id", "ts", "erase"),
    "orders": ("id", "created_at", "anonymize"),
    "accounts": ("user_id", "deleted_at", "anonymize"),
}


def _cutoff_text(table: str) -> str:
    """The cutoff in the seeded SQLite text form ('YYYY-MM-DD HH:MM:SS.ffffff'), so `<=` is exact."""
    return CUTOFF[table].strftime("%Y-%m-%d %H:%M:%S.%f")


def token(key: bytes, value: str | None) -> str | None:
    """The pseudonymize operator's text token, computed the plain way."""
    if value is None:
        return None
    digest = hmac.digest(key, value.encode("utf-8"), "sha256")[:30]
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------------------------------
# Children: one contender per process


def _dbapi(url: str):
    """A plain DB-API connection (no SQLAlchemy) for the hand-written contenders."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")  # Lethe's setting
        return conn, "sqlite"
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                           dbname=u.database), "postgresql"


def child_lethe(url: str, profile: str | None) -> dict:
    from pipelines import report, runner, steps

    timers: dict[str, float] = {}

    def timed(module, attr, label=None):
        inner = getattr(module, attr)

        def wrapper(*args, **kwargs):
            name = label or attr
            if attr == "apply":
                name = f"apply.{args[1]}"
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                timers[name] = timers.get(name, 0.0) + time.perf_counter() - t

        setattr(module, attr, wrapper)

    for attr in ("plan", "move_held_rows", "release_vault_rows", "apply", "coarsen"):
        timed(steps, attr)
    timed(runner, "verify")
    timed(runner, "assemble", "report.assemble")
    timed(report, "write", "report.write")
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="lethe-bench-reports-") as reports:
        t = time.perf_counter()
        if prof:
            prof.enable()
        result = runner.run(POLICY, AS_OF, store=url, report_dir=reports)
        if prof:
            prof.disable()
        seconds = time.perf_counter() - t
    if prof:
        prof.dump_stats(profile)
    tables = result.report["tables"]
    changed = sum(t["erased"] + t["anonymized"] for t in tables.values())
    return {"seconds": seconds, "changed": changed, "status": result.status,
            "per_table": {n: {"erased": t["erased"], "anonymized": t["anonymized"]} for n, t in tables.items()},
            "breakdown": {k: round(v, 3) for k, v in timers.items()}}


def child_sql(url: str) -> dict:
    """(a): one set-based statement per rule, each its own transaction."""
    key = os.environ[KEY_ENV].strip().encode()
    conn, dialect = _dbapi(url)
    changed, breakdown = 0, {}
    if dialect == "postgresql":
        tok = (f"'{TOKEN_PREFIX}' || translate(encode(substr(hmac(convert_to({{c}}, 'UTF8'), %(key)s, 'sha256'), "
               f"1, 30), 'base64'), '+/', '-_')")
        statements = {
            "access_logs": ("DELETE FROM access_logs WHERE ts <= %(cut)s", {}),
            "orders": (f"UPDATE orders SET email = {tok.format(c='email')}, shipping_address = %(red)s, "
                       "billing_address = %(red)s WHERE created_at <= %(cut)s", {"key": key}),
            "accounts": (f"UPDATE accounts SET email = {tok.format(c='email')}, password_hash = %(red)s, "
                         "signup_ip = NULL WHERE deleted_at <= %(cut)s", {"key": key}),
        }
        t0 = time.perf_counter()
        for table, (sql, params) in statements.items():
            t = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute(sql, {**params, "cut": CUTOFF[table], "red": REDACTED})
                changed += cur.rowcount
            conn.commit()
            breakdown[table] = round(time.perf_counter() - t, 3)
    else:
        conn.create_function("lethe_token", 1, lambda v: token(key, v), deterministic=True)
        statements = {
            "access_logs": "DELETE FROM access_logs WHERE ts <= :cut",
            "orders": ("UPDATE orders SET email = lethe_token(email), shipping_address = :red, "
                       "billing_address = :red WHERE created_at <= :cut"),
            "accounts": ("UPDATE accounts SET email = lethe_token(email), password_hash = :red, signup_ip = NULL "
                         "WHERE deleted_at <= :cut"),
        }
        t0 = time.perf_counter()
        for table, sql in statements.items():
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            changed += conn.execute(sql, {"cut": _cutoff_text(table), "red": REDACTED}).rowcount
            conn.execute("COMMIT")
            breakdown[table] = round(time.perf_counter() - t, 3)
    seconds = time.perf_counter() - t0
    conn.close()
    return {"seconds": seconds, "changed": changed, "breakdown": breakdown}


def child_rowwise(url: str, sample: int | None) -> dict:
    """(b): fetch the due rows, then one statement per row; per table time extrapolated when sampled."""
    key = os.environ[KEY_ENV].strip().encode()
    conn, dialect = _dbapi(url)
    ph = "%s" if dialect == "postgresql" else "?"
    per_table = {}
    for table, (pk, ts, action) in RULES.items():
        cut = CUTOFF[table] if dialect == "postgresql" else _cutoff_text(table)
        cur = conn.cursor()
        cur.execute(f"SELECT count(*) FROM {table} WHERE {ts} <= {ph}", (cut,))
        due = cur.fetchone()[0]
        if dialect == "sqlite":
            conn.execute("BEGIN")  # the sqlite3 module is in autocommit mode: batch explicitly
        t = time.perf_counter()
        cols = pk if action == "erase" else f"{pk}, email"
        limit = f" LIMIT {int(sample)}" if sample else ""
        cur.execute(f"SELECT {cols} FROM {table} WHERE {ts} <= {ph} ORDER BY {pk}{limit}", (cut,))
        rows = cur.fetchall()
        if table == "access_logs":
            stmt, params = f"DELETE FROM access_logs WHERE id = {ph}", ((r[0],) for r in rows)
        elif table == "orders":
            stmt = (f"UPDATE orders SET email = {ph}, shipping_address = {ph}, billing_address = {ph} "
                    f"WHERE id = {ph}")
            params = ((token(key, r[1]), REDACTED, REDACTED, r[0]) for r in rows)
        else:
            stmt = (f"UPDATE accounts SET email = {ph}, password_hash = {ph}, signup_ip = NULL "
                    f"WHERE user_id = {ph}")
            params = ((token(key, r[1]), REDACTED, r[0]) for r in rows)
        done = 0
        for p in params:
            cur.execute(stmt, p)  # one statement, one round trip per row
            done += 1
            if done % BATCH == 0:
                conn.commit()
                if dialect == "sqlite":
                    conn.execute("BEGIN")
        conn.commit()
        elapsed = time.perf_counter() - t
        cur.close()
        per_table[table] = {"due": due, "done": done, "seconds": round(elapsed, 3),
                            "extrapolated": round(elapsed * due / done, 3) if done else 0.0}
    conn.close()
    sampled = any(v["done"] < v["due"] for v in per_table.values())
    return {"seconds": sum(v["extrapolated"] for v in per_table.values()),
            "changed": sum(v["due"] for v in per_table.values()), "sampled": sampled,
            "measured_seconds": sum(v["seconds"] for v in per_table.values()), "breakdown": per_table}


# --------------------------------------------------------------------------------------------------
# Parent: seed, copy, run the children, check, tabulate


def peak_rss_mib() -> float:
    """This process's peak resident set since exec (VmHWM). Not ru_maxrss from wait4: on Linux that also
    counts the parent's pages at fork time, and the parent has just seeded millions of rows."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: list[str], timeout: float | None = None) -> tuple[dict, float, float]:
    """Run this script as a child; return its JSON result, wall seconds and peak RSS in MiB.

    A child still running after `timeout` seconds is killed and reported as timed out."""
    import threading

    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_child", *args],
                            stdout=subprocess.PIPE, cwd=ROOT)
    watchdog = threading.Timer(timeout, proc.kill) if timeout else None
    if watchdog:
        watchdog.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if watchdog:
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if timeout and wall >= timeout and proc.returncode != 0:
        return {"seconds": wall, "changed": 0, "timed_out": True}, wall, usage.ru_maxrss / 1024
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} exited with {proc.returncode}")
    res = json.loads(out.decode().strip().splitlines()[-1])
    return res, wall, res.pop("peak_rss_mib")


def digest(url: str) -> str:
    """What the mutations left: access_logs' count, every orders/accounts row's touched columns."""
    conn, _ = _dbapi(url)
    h = hashlib.sha256()
    cur = conn.cursor()
    cur.execute("SELECT count(*), coalesce(sum(id), 0) FROM access_logs")
    h.update(repr(tuple(cur.fetchone())).encode())
    for sql in ("SELECT id, email, shipping_address, billing_address FROM orders ORDER BY id",
                "SELECT user_id, email, password_hash, signup_ip FROM accounts ORDER BY user_id"):
        cur.execute(sql)
        while rows := cur.fetchmany(50_000):
            h.update(repr([tuple(r) for r in rows]).encode())
    cur.close()
    conn.close()
    return h.hexdigest()[:16]


class SQLiteStores:
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir

    def template(self, rows: int) -> str:
        path = self.dir / f"template_{rows}.db"
        for p in self.dir.glob(f"template_{rows}.db*"):
            p.unlink()
        return f"sqlite:///{path}"

    def finish_template(self, url: str) -> None:
        import sqlite3

        conn = sqlite3.connect(url.split(":///", 1)[1])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
        conn.close()

    def clone(self, template: str, label: str) -> str:
        src = Path(template.split(":///", 1)[1])
        dst = self.dir / f"{label}.db"
        self.drop(f"sqlite:///{dst}")
        shutil.copyfile(src, dst)
        return f"sqlite:///{dst}"

    def drop(self, url: str) -> None:
        path = Path(url.split(":///", 1)[1])
        for p in path.parent.glob(path.name + "*"):
            p.unlink()

    def maintain(self, url: str) -> None:
        pass  # SQLite frees deleted rows' pages at once: no dead rows, no statistics to refresh

    def stop(self) -> None:
        pass


class PostgresStores:
    name = "postgresql"

    def __init__(self) -> None:
        from tests.support import pgserver

        self.server = pgserver.start()

    def template(self, rows: int) -> str:
        return self.server.url(self.server.create_database(f"tmpl{rows}"))

    def finish_template(self, url: str) -> None:
        self.server.admin("VACUUM ANALYZE", database=url.rsplit("/", 1)[1])

    def clone(self, template: str, label: str) -> str:
        name = f"{label}_{secrets.token_hex(3)}"
        self.server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template.rsplit("/", 1)[1]}"')
        return self.server.url(name)

    def drop(self, url: str) -> None:
        self.server.admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')

    def maintain(self, url: str) -> None:
        """What autovacuum does after a mass DELETE, done now so the measurement does not depend on when
        it wakes up: without it, the next reads of access_logs visit the deleted rows' dead versions."""
        self.server.admin("VACUUM ANALYZE", database=url.rsplit("/", 1)[1])

    def stop(self) -> None:
        self.server.stop()


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench(stores, rows: int, sample: int | None, profile_dir: Path | None,
          second_run_timeout: float | None = None) -> list[dict]:
    from pipelines.seed import seed

    results = []
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')} load {load()}] {stores.name} {rows:,}: {msg}",  # noqa: E731
                            file=sys.stderr, flush=True)

    def record(contender: str, res: dict, wall: float, rss: float, **extra) -> dict:
        row = {"backend": stores.name, "rows": rows, "contender": contender, "seconds": res["seconds"],
               "changed": res["changed"], "rss_mib": rss, "process_wall": wall, "load": load(),
               "detail": {k: v for k, v in res.items() if k not in ("seconds", "changed")}, **extra}
        results.append(row)
        log(f"{contender}: {res['seconds']:.1f} s, {res['changed']:,} rows, {rss:.0f} MiB, {row['detail']}")
        return row

    template = stores.template(rows)
    t = time.perf_counter()
    counts = seed(template, rows=rows, seed=0, as_of=AS_OF, replace=True)
    stores.finish_template(template)
    log(f"seeded {sum(counts.values()):,} rows in {time.perf_counter() - t:.0f} s")
    try:
        swept = stores.clone(template, "lethe")
        res, wall, rss = run_child(["lethe", swept])
        first = record("lethe", res, wall, rss)
        expected = digest(swept)

        url = stores.clone(template, "sql")
        res, wall, rss = run_child(["sql", url])
        record("(a) set-based SQL", res, wall, rss, same_result=digest(url) == expected)
        stores.drop(url)

        url = stores.clone(template, "rowwise")
        res, wall, rss = run_child(["rowwise", url, *(["--sample", str(sample)] if sample else [])])
        record("(b) row-by-row", res, wall, rss,
               same_result=None if res["sampled"] else digest(url) == expected)
        stores.drop(url)

        # Last, as it may be slow (see the README): Lethe again over its own swept store, once the
        # database has done its housekeeping after the first run's mass DELETE (see maintain()).
        stores.maintain(swept)
        res, wall, rss = run_child(["lethe", swept], timeout=second_run_timeout)
        record("lethe 2nd run", res, wall, rss, vs_first=res["seconds"] / first["seconds"])
        stores.drop(swept)

        if profile_dir:  # cProfile slows Python code down: a separate run, not in the table
            url = stores.clone(template, "profiled")
            path = profile_dir / f"lethe_{stores.name}_{rows}.prof"
            res, wall, rss = run_child(["lethe", url, "--profile", str(path)])
            log(f"profiled Lethe run: {res['seconds']:.1f} s -> {path}")
            stores.drop(url)
    finally:
        stores.drop(template)
    return results


def table(results: list[dict]) -> str:
    lines = [f"{'backend':<10} {'rows':>11} {'contender':<18} {'seconds':>9} {'changed/s':>11} "
             f"{'Lethe/it':>8} {'peak RSS':>9}  notes"]
    lines.append("-" * len(lines[0]))
    lethe = {(r["backend"], r["rows"]): r for r in results if r["contender"] == "lethe"}
    rows = []
    for r in results:
        rows.append(r)
        if r["contender"] == "lethe":  # the part of the run that makes the mutations, as (a) and (b) do
            apply = sum(v for k, v in r["detail"]["breakdown"].items() if k.startswith("apply."))
            rows.append({**r, "contender": "  of which apply", "seconds": apply,
                         "detail": {}, "notes": f"plan {r['detail']['breakdown'].get('plan', 0):.1f} s, "
                                                f"verify {r['detail']['breakdown'].get('verify', 0):.1f} s"})
    for r in rows:
        base = lethe[(r["backend"], r["rows"])]
        rate = r["changed"] / r["seconds"] if r["seconds"] and r["changed"] else 0.0
        lethe_rate = base["changed"] / base["seconds"]
        notes = [r["notes"]] if r.get("notes") else []
        if r["contender"] == "  of which apply":
            ratio = "-"
        elif r["contender"] == "lethe 2nd run":
            ratio = "-"
            notes.append(f"{r['vs_first']:.1%} of the first run, {r['changed']} rows changed")
            if r["detail"].get("timed_out"):
                notes.append("TIMED OUT (stopped)")
        else:
            ratio = f"{lethe_rate / rate:.2f}" if rate else "-"
        if r.get("same_result") is not None:
            notes.append("same result" if r["same_result"] else "RESULT DIFFERS")
        if r["detail"].get("sampled"):
            notes.append(f"extrapolated from {r['detail']['measured_seconds']:.1f} s on a sample")
        notes.append(f"load {r['load']}")
        lines.append(f"{r['backend']:<10} {r['rows']:>11,} {r['contender']:<18} {r['seconds']:>9.1f} "
                     f"{rate:>11,.0f} {ratio:>8} {r['rss_mib']:>6.0f} MiB  {'; '.join(notes)}")
    lines += ["", "Targets (throughput = rows changed per second; whole run, and the apply step alone):"]
    for (backend, n), base in lethe.items():
        by = {r["contender"]: r for r in results if r["backend"] == backend and r["rows"] == n}
        apply = sum(v for k, v in base["detail"]["breakdown"].items() if k.startswith("apply."))
        for label, target in (("(a) set-based SQL", 0.8), ("(b) row-by-row", 20.0)):
            if label in by:
                other = by[label]["seconds"]
                lines.append(f"  {backend} {n:,}: Lethe / {label[:3]} = {other / base['seconds']:.2f}x "
                             f"(apply only {other / apply:.2f}x); target >= {target}x")
        if "lethe 2nd run" in by:
            lines.append(f"  {backend} {n:,}: second run {by['lethe 2nd run']['vs_first']:.1%} of the first; "
                         "target < 5%")
    for backend in {r["backend"] for r in results}:
        sizes = sorted(n for b, n in lethe if b == backend)
        if len(sizes) > 1:
            lo, hi = lethe[(backend, sizes[0])]["rss_mib"], lethe[(backend, sizes[-1])]["rss_mib"]
            lines.append(f"  {backend}: Lethe peak RSS {hi:.0f} MiB at {sizes[-1]:,} rows = {hi / lo:.2f}x that at "
                         f"{sizes[0]:,}; target <= 1.2x and < 1024 MiB")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        p = argparse.ArgumentParser()
        p.add_argument("_child")
        p.add_argument("kind", choices=["lethe", "sql", "rowwise"])
        p.add_argument("url")
        p.add_argument("--sample", type=int)
        p.add_argument("--profile")
        a = p.parse_args()
        if a.kind == "lethe":
            res = child_lethe(a.url, a.profile)
        elif a.kind == "sql":
            res = child_sql(a.url)
        else:
            res = child_rowwise(a.url, a.sample)
        res["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(res, default=str), flush=True)
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sample", type=int, help="rowwise: only the first N due rows per table, extrapolated")
    parser.add_argument("--profile", type=Path, help="directory for cProfile dumps of Lethe's first runs")
    parser.add_argument("--second-run-timeout", type=float, default=1800,
                        help="seconds after which Lethe's second run is stopped and reported as timed out")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--workdir", type=Path, help="directory for the SQLite stores (default: temporary)")
    parser.add_argument("--workers", type=int, help="Lethe's concurrent chunk transactions (LETHE_WORKERS; "
                        "default: Lethe's own default, 2; SQLite uses one)")
    args = parser.parse_args()
    os.environ[KEY_ENV] = secrets.token_urlsafe(48)  # random per invocation; inherited by the children
    if args.workers is not None:
        os.environ["LETHE_WORKERS"] = str(args.workers)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    from pipelines.workers import resolve_workers

    print(machine(), f"| Lethe workers {resolve_workers(None)} | load average at start {load()}", flush=True)
    results: list[dict] = []
    tmp = tempfile.TemporaryDirectory(prefix="lethe-bench-engine-") if args.workdir is None else None
    workdir = Path(tmp.name) if tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
            stores = SQLiteStores(workdir) if backend == "sqlite" else PostgresStores()
            try:
                for rows in args.rows:
                    results += bench(stores, rows, args.sample, args.profile, args.second_run_timeout)
                    if args.json:
                        args.json.write_text(json.dumps(results, indent=1, default=str))
            finally:
                stores.stop()
    finally:
        if tmp:
            tmp.cleanup()
        if results:
            print(table(results), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
