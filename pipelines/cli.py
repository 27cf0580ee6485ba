"""The `lethe` command line. Exit codes: 0 success, 1 an expectation failed, 2 bad input, 3 failed part-way."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from pipelines.durations import parse_as_of
from pipelines.errors import InputError, LetheError
from pipelines.workers import DEFAULT_WORKERS, MAX_WORKERS, resolve_workers

log = logging.getLogger("lethe")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad arguments, which is the SPEC's code for bad input; keep its message short."""

    def error(self, message: str) -> None:  # noqa: D102
        self.print_usage(sys.stderr)
        self.exit(2, f"lethe: error: {message}\n")


def _as_of(text: str):
    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        return resolve_workers(int(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_WORKERS}, "
                                         f"got {text[:20]!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _given(text: str) -> str:
    """An option given with an empty value (an unset shell variable: --store "$STORE") is a mistake, not the
    default: an empty --store fell back to the policy's store and changed it, an empty --report-dir wrote
    into the working directory.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a value or leave the option out")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lethe", description="Data retention and anonymisation, per a YAML policy.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for DEBUG)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def run_args(p: argparse.ArgumentParser, dry: bool) -> None:
        p.add_argument("--policy", required=True, type=_given, help="policy YAML file")
        p.add_argument("--as-of", required=True, type=_as_of, help="date the run acts for, YYYY-MM-DD")
        if not dry:
            p.add_argument("--dry-run", action="store_true", help="report what would happen; write nothing")
        p.add_argument("--report-dir", default="reports", type=_given, help="where reports go (default: reports/)")
        p.add_argument("--store", type=_given, help="store URL (overrides LETHE_STORE_URL and the policy)")
        p.add_argument("--vault", type=_given, help="vault URL (overrides LETHE_VAULT_URL and the policy)")
        p.add_argument("--workers", type=_workers, help=f"concurrent chunk transactions on PostgreSQL, 1 to "
                       f"{MAX_WORKERS} (overrides LETHE_WORKERS; default {DEFAULT_WORKERS}; SQLite uses one)")

    run_args(sub.add_parser("run", help="erase, anonymize and move due data as of a date"), dry=False)
    run_args(sub.add_parser("plan", help="what a run would do (same as run --dry-run)"), dry=True)
    check = sub.add_parser("check", help="validate the policy against the live schema")
    check.add_argument("--policy", required=True, type=_given)
    check.add_argument("--store", type=_given)
    led = sub.add_parser("ledger", help="the tamper-evident ledger")
    led_sub = led.add_subparsers(dest="ledger_command", required=True, parser_class=_Parser)
    ver = led_sub.add_parser("verify", help="verify the hash chain")
    ver.add_argument("--policy", required=True, type=_given)
    ver.add_argument("--store", type=_given)
    seed = sub.add_parser("seed", help="create the reference dataset")
    seed.add_argument("--store", required=True, type=_given)
    seed.add_argument("--rows", type=_positive, default=10_000)
    seed.add_argument("--seed", type=_positive, default=0)
    seed.add_argument("--as-of", type=_as_of, default=None, help="date the controlled mix is relative to")
    seed.add_argument("--replace", action="store_true", help="drop the reference tables first")
    sub.add_parser("demo", help="seed the embedded default, run as of today, print the report path")
    rep = sub.add_parser("report", help="(re)build the index page over all runs")
    rep.add_argument("--report-dir", default="reports", type=_given)
    holds = sub.add_parser("holds", help="active legal holds and how many rows each protects")
    holds.add_argument("--policy", required=True, type=_given)
    holds.add_argument("--store", type=_given)
    holds.add_argument("--vault", type=_given)
    return parser


def _cmd_run(args: argparse.Namespace, dry_run: bool) -> int:
    from pipelines.runner import run

    result = run(args.policy, args.as_of, dry_run=dry_run, report_dir=args.report_dir,
                 store=args.store, vault=args.vault, workers=args.workers)
    _print_summary(result.report)
    print(f"report: {result.report_path}")
    return result.exit_code


def _print_summary(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{'plan' if rep['dry_run'] else 'run'} {rep['run_id']} as of {rep['as_of']}: "
                        f"{rep['status']}")
    for col in ("table", "due", "erased", "anonymized", "moved to vault"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, t in rep["tables"].items():
        table.add_row(name, str(t["due"]), str(t["erased"]), str(t["anonymized"]), str(t["moved_to_vault"]))
    Console(stderr=False).print(table)
    failed = [e["name"] for e in rep.get("expectations", []) if not e["success"]]
    if failed:
        print(f"failed expectations: {', '.join(failed)}", file=sys.stderr)
    for hint in rep.get("hints", []):
        print(f"hint: {hint}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    from pipelines import key_ids
    from pipelines import store as stores
    from pipelines.context import operator_context, validate
    from pipelines.policy import load_policy

    policy = load_policy(args.policy)
    problems = []
    try:
        context = operator_context(policy)
    except InputError as exc:
        problems.extend(exc.problems)
        context = None
    url = stores.resolve_url(args.store, "LETHE_STORE_URL", policy.store, "store")
    engine = stores.reach(stores.connect(url), url)
    try:
        validate(policy, engine, context)
        if context is not None:
            key_ids.check(engine, context.key_id, context.key)
    except InputError as exc:
        problems.extend(exc.problems)
    finally:
        engine.dispose()
    if problems:
        raise InputError(problems, source=policy.source)
    print(f"{args.policy}: OK ({len(policy.tables)} tables, {len(policy.aggregates)} aggregates) "
          f"against {stores.redacted(url)}")
    return 0


def _cmd_ledger_verify(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from pipelines import ledger
    from pipelines import store as stores
    from pipelines.policy import load_policy

    policy = load_policy(args.policy)
    url = stores.resolve_url(args.store, "LETHE_STORE_URL", policy.store, "store")
    engine = stores.reach(stores.connect(url), url)
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            v = ledger.verify(conn)
        if v.ok and not (inspector.has_table(ledger.LEDGER.name) or inspector.has_table(ledger.HEAD.name)):
            print("ledger: empty (no run has written to this store yet)")
            return 0
    finally:
        engine.dispose()
    if v.ok:
        print(f"ledger: OK, {v.entries} entries, head {v.head}")
        return 0
    where = f" at entry {v.first_bad}" if v.first_bad is not None else ""
    print(f"ledger: BROKEN{where}: {v.reason}", file=sys.stderr)
    return 1


def _cmd_seed(args: argparse.Namespace) -> int:
    from pipelines.seed import seed

    try:
        counts = seed(args.store, rows=args.rows, seed=args.seed, as_of=args.as_of, progress=True,
                      replace=args.replace)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    print(f"seeded {sum(counts.values())} rows: " + ", ".join(f"{t}={n}" for t, n in counts.items()))
    return 0


def _cmd_demo(_args: argparse.Namespace) -> int:
    from pipelines.demo import demo

    return demo()


def _cmd_report(args: argparse.Namespace) -> int:
    from pipelines import report_html

    directory = Path(args.report_dir)
    if not directory.is_dir():  # a mistyped directory got an empty index there, as if no run had been reported
        raise InputError(f"no report directory at {directory}; give the --report-dir the runs wrote to")
    index = report_html.write_index(directory)
    print(f"index: {index}")
    return 0


def _cmd_holds(args: argparse.Namespace) -> int:
    import datetime as dt

    from pipelines.context import build
    from pipelines.steps import holds_summary

    ctx = build(args.policy, dt.datetime.now(dt.UTC).date(), dry_run=True, store=args.store, vault=args.vault)
    try:
        rows = holds_summary(ctx)
    finally:
        ctx.dispose()
    if not rows:
        print("no active legal holds")
    for h in rows:
        print(f"{h['hold_id']}\t{h['case_ref']}\tstore={h['rows_in_store']}\tvault={h['rows_in_vault']}")
    return 0


def _say(message: str) -> None:
    """Print to stderr even when a hostile policy put lone surrogates into the message."""
    print(message.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)


def _terminated(_signum: int, _frame: object) -> None:
    # SIGTERM (Airflow, systemd, an operator) unwinds like Ctrl-C: the open chunk's transaction rolls
    # back, the store lock is released, committed chunks stay done.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = {
        "run": lambda a: _cmd_run(a, dry_run=a.dry_run),
        "plan": lambda a: _cmd_run(a, dry_run=True),
        "check": _cmd_check,
        "ledger": _cmd_ledger_verify,
        "seed": _cmd_seed,
        "demo": _cmd_demo,
        "report": _cmd_report,
        "holds": _cmd_holds,
    }
    try:
        return handlers[args.command](args)
    except LetheError as exc:
        _say(f"lethe: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        print("lethe: interrupted; committed chunks stay done, the next run finishes the rest", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
