"""The human half of the run report: one HTML page per run and an index over all runs.

Compliance reviewers read these, not SQL, so every page says in words what was due and why, what
happened to it and what protected it. Pages are self-contained (inline CSS, charts as inline SVG, a
Content-Security-Policy that forbids any fetch) so they can be archived, mailed and printed as they
are. They are rendered only from the report dicts, which carry counts, dates and ids, never a value
from the data; Jinja2 autoescaping keeps even those from being read as markup.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jinja2

from pipelines import report

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("erased", "Erased", "#D55E00"),
    ("anonymized", "Anonymized", "#0072B2"),
    ("moved_to_vault", "Moved to the vault (legal hold)", "#CC79A7"),
)
TREND_RUNS = 60  # the trend charts show the most recent runs; the runs table lists all of them

STATUS_TEXT = {
    "succeeded": ("Succeeded", "Every check passed."),
    "failed": ("Failed", "The run completed but at least one check failed: see the checks below."),
    "error": ("Error", "The run stopped part-way. No row is lost or duplicated; the next run completes the work."),
}

# What each check promises, in a reviewer's words (pipelines/verify.py lists the names); the raw name is shown too.
EXPECTATION_TEXT = {
    "retention": "No row of {t} whose retention has ended is left unprocessed (unless it is held)",
    "erasure": "No row of {t} belonging to an account deleted past the grace period is left unprocessed "
               "(unless it is held)",
    "holds": "No due row of {t} under an active legal hold is left in the store: it is in the vault",
    "form": "Anonymized values in {t}.{c} have the form their operator promises",
    "form.no_email": "Anonymized values in {t}.{c} contain no email address",
    "form.no_phone": "Anonymized values in {t}.{c} contain no phone number",
    "form.no_ip": "Anonymized values in {t}.{c} contain no full IP address",
    "vault": "Every vault row of {t} matches the checksum recorded when it was moved",
    "vault.rows": "The vault holds every row of {t} moved there and not released, as the ledger records them",
    "aggregate.total": "The totals of {t} equal the rows folded into it, as the ledger records them",
    "aggregate.min_group_size": "No group in {t} is smaller than the minimum group size",
    "ledger": "The ledger's hash chain is intact",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipelines", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    return env


_ENV: jinja2.Environment | None = None


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


# -- small formatting helpers


def _num(value: object) -> str:
    """Thousands separated by commas, as the page is in English."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float (1e400 in JSON)
        return "—"


def _int(value: object) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _show_time(value: object) -> str:
    stamp = _parse_time(value)
    return stamp.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if stamp else "—"


def _duration(start: object, end: object) -> str:
    a, b = _parse_time(start), _parse_time(end)
    if not a or not b:
        return "—"
    seconds = max(0, round((b - a).total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _run_href(run_id: str) -> str:
    return quote(f"{run_id}.html")


def _describe_expectation(name: str) -> str:
    """`retention.T`, `form.T.C[.no_email]`, `aggregate.A.total`, `ledger.chain` … as a sentence."""
    family, _, rest = name.partition(".")
    parts = rest.split(".") if rest else []
    key = family
    if family == "form" and len(parts) >= 3:
        key = f"form.{parts[2]}"
    elif family == "aggregate" and len(parts) >= 2:
        key = f"aggregate.{parts[-1]}"
    elif family == "vault" and len(parts) >= 2:
        key = f"vault.{parts[-1]}"
    text = EXPECTATION_TEXT.get(key)
    if text is None:
        return name
    return text.format(t=parts[0] if parts else "the store", c=parts[1] if len(parts) > 1 else "")


def _generated() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- charts (geometry here, markup in templates/_charts.html.j2)


@dataclass
class Bar:
    x: float
    width: float
    color: str
    label: str


@dataclass
class BarRow:
    name: str
    y: float
    total: int
    bars: list[Bar] = field(default_factory=list)


@dataclass
class BarChart:
    """Horizontal stacked bars, one row per table: rows erased, anonymized and moved to the vault."""

    title: str
    description: str
    width: int
    height: int
    label_width: int
    plot_width: int
    row_height: int
    rows: list[BarRow]
    ticks: list[tuple[float, str]]


def _nice_max(value: int) -> int:
    """A round axis maximum at or above value (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return int(math.ceil(step * power))
    return value


def processed_chart(tables: dict[str, dict]) -> BarChart | None:
    if not tables:
        return None
    label_width, plot_width, row_height = 200, 560, 30
    top = 8
    peak = max(sum(_int(t.get(k)) for k, _, _ in ACTIONS) for t in tables.values())
    axis_max = _nice_max(peak)
    scale = plot_width / axis_max
    rows = []
    for i, (name, t) in enumerate(tables.items()):
        row = BarRow(name=name, y=top + i * row_height, total=0)
        x = float(label_width)
        for key, label, color in ACTIONS:
            n = _int(t.get(key))
            if n <= 0:
                continue
            width = max(n * scale, 2.0)  # a single row still shows
            row.bars.append(Bar(x=round(x, 1), width=round(width, 1), color=color, label=f"{label}: {_num(n)}"))
            x += width
            row.total += n
        rows.append(row)
    ticks = [(round(label_width + plot_width * f, 1), _num(axis_max * f)) for f in (0, 0.25, 0.5, 0.75, 1)]
    summary = "; ".join(
        f"{name}: " + ", ".join(f"{label.lower()} {_num(t.get(key))}" for key, label, _ in ACTIONS)
        for name, t in tables.items())
    return BarChart(
        title="Rows processed per table", description=summary, width=label_width + plot_width + 70,
        height=top + len(rows) * row_height + 30, label_width=label_width, plot_width=plot_width,
        row_height=row_height, rows=rows, ticks=ticks)


@dataclass
class TrendChart:
    """One table's rows processed per run, as stacked columns (erased, anonymized, moved to vault)."""

    table: str
    description: str
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    axis_max: int
    columns: list[dict]
    first_label: str
    last_label: str
    latest: int


def trend_charts(runs: list[dict]) -> list[TrendChart]:
    """Small multiples, one per table, over the most recent real runs (dry runs changed nothing; a run that
    stopped with an error counts the rows it changed before it stopped).
    """
    real = [r for r in runs if not r.get("dry_run") and r.get("tables")][-TREND_RUNS:]
    if not real:
        return []
    names: list[str] = []
    for r in real:
        names.extend(n for n in r["tables"] if n not in names)
    width, height, left, top, bottom = 340, 150, 46, 12, 30
    plot_w, plot_h = width - left - 10, height - top - bottom
    slot = plot_w / len(real)
    bar_w = max(1.0, min(28.0, slot * 0.7))
    charts = []
    for name in names:
        per_run = [r["tables"].get(name, {}) for r in real]
        totals = [sum(_int(t.get(k)) for k, _, _ in ACTIONS) for t in per_run]
        axis_max = _nice_max(max(totals))
        columns = []
        for i, (r, t) in enumerate(zip(real, per_run, strict=True)):
            x = left + slot * i + (slot - bar_w) / 2
            y = top + plot_h
            segments = []
            for key, _label, color in ACTIONS:
                n = _int(t.get(key))
                if n <= 0:
                    continue
                h = max(n / axis_max * plot_h, 1.0)
                y -= h
                segments.append({"y": round(y, 1), "height": round(h, 1), "color": color})
            columns.append({"x": round(x, 1), "width": round(bar_w, 1), "segments": segments,
                            "title": f"{r.get('as_of', '?')}: {_num(totals[i])} rows "
                                     f"({', '.join(f'{lbl.lower()} {_num(t.get(k))}' for k, lbl, _ in ACTIONS)})"})
        description = f"Rows of {name} processed per run, as of " + "; ".join(
            f"{r.get('as_of', '?')}: {_num(n)}" for r, n in zip(real, totals, strict=True))
        charts.append(TrendChart(
            table=name, description=description, width=width, height=height, left=left, top=top,
            plot_width=plot_w, plot_height=plot_h, axis_max=axis_max, columns=columns,
            first_label=str(real[0].get("as_of", "")), last_label=str(real[-1].get("as_of", "")),
            latest=totals[-1]))
    return charts


# -- view models


def _tables_view(rep: dict) -> list[dict]:
    rules = rep.get("rules") or {}
    out = []
    for name, t in (rep.get("tables") or {}).items():
        rule = rules.get(name) or {}
        out.append({
            "name": name,
            "due": _int(t.get("due")),
            "due_by_retention": _int(t.get("due_by_retention")),
            "due_by_subject_deletion": _int(t.get("due_by_subject_deletion")),
            "erased": _int(t.get("erased")),
            "anonymized": _int(t.get("anonymized")),
            "moved_to_vault": _int(t.get("moved_to_vault")),
            "released_erased": _int(t.get("released_erased")),
            "released_returned": _int(t.get("released_returned")),
            "retention": rule.get("retention"),
            "when_expired": rule.get("when_expired"),
            "when_subject_deleted": rule.get("when_subject_deleted"),
        })
    return out


def _pending_view(pending: dict | None) -> dict | None:
    if not isinstance(pending, dict):
        return None
    listed = pending.get("subjects")
    subjects = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
    overdue = [s for s in subjects if s.get("overdue")]
    waiting = [s for s in subjects if not s.get("overdue")]
    reasons = Counter(str(s.get("reason", "unknown")) for s in overdue)
    return {
        "count": _int(pending.get("count")),
        "overdue": _int(pending.get("overdue")),
        "listed": len(subjects),
        "overdue_subjects": overdue,
        "waiting_subjects": waiting,
        "overdue_reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
    }


def _run_view(rep: dict) -> dict:
    status = str(rep.get("status", "unknown"))
    status_label, status_text = STATUS_TEXT.get(status, (status.capitalize(), ""))
    tables = _tables_view(rep)
    expectations = [
        {"name": str(e.get("name", "")), "text": _describe_expectation(str(e.get("name", ""))),
         "success": bool(e.get("success")), "unexpected_count": _int(e.get("unexpected_count"))}
        for e in rep.get("expectations") or [] if isinstance(e, dict)]
    expectations.sort(key=lambda e: e["success"])  # failures first; otherwise the order the checks ran
    ledger = rep.get("ledger") or {}
    vault = rep.get("vault") or {}
    totals = {k: sum(t[k] for t in tables) for k in
              ("due", "erased", "anonymized", "moved_to_vault", "released_erased", "released_returned")}
    return {
        "run_id": str(rep.get("run_id", "")),
        "as_of": str(rep.get("as_of", "")),
        "dry_run": bool(rep.get("dry_run")),
        "status": status,
        "status_label": status_label,
        "status_text": status_text,
        "error": rep.get("error"),
        "policy_sha256": rep.get("policy_sha256"),
        "policy_file": rep.get("policy_file"),
        "started_at": _show_time(rep.get("started_at")),
        "finished_at": _show_time(rep.get("finished_at")),
        "duration": _duration(rep.get("started_at"), rep.get("finished_at")),
        "tables": tables,
        "totals": totals,
        "vault": {"moved": _int(vault.get("moved")), "released": _int(vault.get("released"))},
        "aggregates": [{"name": n, "folded": _int((a or {}).get("folded"))}
                       for n, a in (rep.get("aggregates") or {}).items()],
        "expectations": expectations,
        "expectations_failed": sum(not e["success"] for e in expectations),
        "ledger": {
            "present": bool(ledger),
            "entries": _int(ledger.get("entries")),
            "total_entries": ledger.get("total_entries"),
            "head": ledger.get("head"),
            "verified": ledger.get("verified"),
            "first_bad_entry": ledger.get("first_bad_entry"),
        },
        "holds": [h for h in rep.get("holds") or [] if isinstance(h, dict)],
        "has_holds": "holds" in rep,
        "pending": _pending_view(rep.get("pending_subjects")),
        "chart": processed_chart(rep.get("tables") or {}),
        "actions": ACTIONS,
    }


def render_run(report_dict: dict) -> str:
    """The run's page: a self-contained HTML document."""
    return _env().get_template("run.html.j2").render(run=_run_view(report_dict), generated=_generated())


def _index_row(rep: dict) -> dict:
    view = _run_view(rep)
    exp = view["expectations"]
    return {
        "run_id": view["run_id"], "href": _run_href(view["run_id"]), "as_of": view["as_of"],
        "dry_run": view["dry_run"], "status": view["status"], "status_label": view["status_label"],
        "started_at": view["started_at"], "totals": view["totals"],
        "checks": f"{len(exp) - view['expectations_failed']} of {len(exp)}" if exp else "—",
        "ledger_verified": view["ledger"]["verified"],
    }


def render_index(runs: list[dict]) -> str:
    """The index page over run reports (oldest first, as report.load_all returns them)."""
    rows = sorted((_index_row(r) for r in runs), key=lambda r: (r["as_of"], r["started_at"], r["run_id"]),
                  reverse=True)
    latest = runs[-1] if runs else None
    with_pending = [r for r in runs if isinstance(r.get("pending_subjects"), dict)]
    pending_from = with_pending[-1] if with_pending else None
    context = {
        "runs": rows,
        "latest": _index_row(latest) if latest else None,
        "latest_error": latest.get("error") if latest and latest.get("status") == "error" else None,
        "pending": _pending_view(pending_from.get("pending_subjects")) if pending_from else None,
        "pending_from": _index_row(pending_from) if pending_from else None,
        "trends": trend_charts(runs),
        "trend_runs": TREND_RUNS,
        "actions": ACTIONS,
        "generated": _generated(),
    }
    return _env().get_template("index.html.j2").render(**context)


def write_index(directory: Path) -> Path:
    """(Re)build `directory/index.html` over every run report there; owner-only like the reports."""
    directory = report.prepare_dir(directory)
    path = directory / "index.html"
    report.write_private(path, render_index(report.load_all(directory)))
    return path


__all__ = ["render_run", "render_index", "write_index"]
