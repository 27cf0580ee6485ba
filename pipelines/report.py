"""The run report: `<report-dir>/<run_id>.json` (the SPEC's fields and more) and its HTML page.

Only counts, dates, hashes, ids of holds and case references go in: never a value from the data.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pipelines.errors import InputError

log = logging.getLogger("lethe.report")

# The JSON type of each report field the index and run pages read. A file in the report directory whose
# fields have other types (another tool's JSON, a report edited by hand, a later format) is left out of
# the index: one such file made every run exit with a traceback after its work was done.
_FIELD_TYPES = {"run_id": str, "as_of": str, "started_at": str, "finished_at": str, "tables": dict,
                "vault": dict, "aggregates": dict, "expectations": list, "ledger": dict, "rules": dict,
                "holds": list, "pending_subjects": dict}
_REQUIRED = ("run_id", "as_of")
_MAPS_OF_OBJECTS = ("tables", "aggregates", "rules")  # table or aggregate name -> an object of counts or rules


def form_hints(expectations: list[dict], operators: dict[str, dict]) -> list[str]:
    """What to do about failed form checks (`form.T.C...`) and aggregate totals, for the engineer reading the
    run's output.

    The usual cause of a form check that fails run after run is a policy change: an operator added for a
    column that was kept, or an operator's parameters changed, after rows were anonymized. Lethe anonymizes
    a row once and re-checks every anonymized row against the current operators, so those rows fail until
    they are brought into line. Names of tables and columns only: never a value.
    """
    failed = {e.get("name", "") for e in expectations if not e.get("success")}
    out = []
    for table, columns in operators.items():
        for column in columns:
            base = f"form.{table}.{column}"
            if any(n == base or n.startswith(base + ".") for n in failed):
                out.append(
                    f"{base}: every row Lethe ever anonymized in {table} is checked against the policy's current "
                    f"operator for {column}, and a row is anonymized only once. If that operator was added or "
                    "changed after rows were anonymized, those rows keep the values of the old policy and fail "
                    "this check on every run: revert the change, or bring those rows into line (their keys are "
                    f"the row_key of lethe_anonymized where table_name = '{table}'). If the policy did not "
                    "change, a value was altered after Lethe anonymized it.")
    for name in sorted(n[len("aggregate."):-len(".total")] for n in failed
                       if n.startswith("aggregate.") and n.endswith(".total")):
        out.append(
            f"aggregate.{name}.total: the counts in table {name} do not add up to the folds the ledger records "
            "for it (the ledger is append-only). If the table was dropped, emptied or edited on purpose, give the "
            "aggregate a new name in the policy: a new name's folds count from zero. Otherwise restore the table.")
    return out


def safe_path(report_dir: Path, run_id: str, suffix: str) -> Path:
    """A file inside the report directory; a run id cannot climb out of it."""
    name = f"{run_id}{suffix}"
    if "/" in name or "\\" in name or name.startswith(".") or ".." in name:
        raise InputError(f"run id {run_id!r} is not a safe file name")
    path = (report_dir / name).resolve()
    if path.parent != report_dir.resolve():
        raise InputError("report path escapes the report directory")
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (reports describe what happened to personal data)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def prepare_dir(report_dir: str | Path) -> Path:
    """The report directory, created owner-only if missing. A run checks it before touching data: a run
    whose report cannot be written would leave compliance staff nothing to read.
    """
    path = Path(report_dir)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"cannot create the report directory {path} ({exc.strerror}); give a writable "
                         "--report-dir") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"the report directory {path} is not writable; give a writable --report-dir")
    return path


def write(report: dict, report_dir: str | Path) -> Path:
    """Write the JSON report and its HTML page; refresh the index. Returns the JSON path."""
    directory = prepare_dir(report_dir)
    json_path = safe_path(directory, report["run_id"], ".json")
    write_private(json_path, json.dumps(report, indent=2, sort_keys=False, default=str))
    try:
        from pipelines import report_html
    except ImportError:  # the HTML half lands separately
        return json_path
    write_private(safe_path(directory, report["run_id"], ".html"), report_html.render_run(report))
    report_html.write_index(directory)
    return json_path


def is_run_report(data: object) -> bool:
    """Whether parsed JSON has the shape of a run report, as far as the pages read it."""
    if not isinstance(data, dict) or not all(name in data for name in _REQUIRED):
        return False
    if any(name in data and not isinstance(data[name], kind) for name, kind in _FIELD_TYPES.items()):
        return False
    return all(isinstance(v, dict) for name in _MAPS_OF_OBJECTS for v in data.get(name, {}).values())


def load_all(report_dir: str | Path) -> list[dict]:
    """Every run report in a directory, oldest first. Unreadable files, and JSON that is no run report,
    are skipped with a warning naming the file.
    """
    out = []
    for path in sorted(Path(report_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("%s: not readable as JSON; left out of the index", path.name)
            continue
        if not is_run_report(data):
            log.warning("%s: not a Lethe run report; left out of the index", path.name)
            continue
        out.append(data)
    return sorted(out, key=lambda r: (r.get("started_at", ""), r["run_id"]))
