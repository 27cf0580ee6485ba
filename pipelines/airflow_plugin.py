"""Airflow 3 plugin: the run reports inside Airflow's UI, where the people who schedule Lethe already log in.

A FastAPI sub-app serves the report directory read-only, to authenticated Airflow users only (plugin
endpoints are not protected by default), and an external view adds "Lethe reports" to the Browse menu,
showing the index in Airflow's iframe. The directory is the DAGs' one: `LETHE_REPORT_DIR`, default
the project's `reports/`.

Register it in one of two ways:
- an entry point in pyproject.toml (then `pip install -e .`):
  `[project.entry-points."airflow.plugins"]` with `lethe = "pipelines.airflow_plugin:LethePlugin"`;
- or a file in `$AIRFLOW_HOME/plugins/` holding `from pipelines.airflow_plugin import LethePlugin`.
Restart the API server afterwards.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse

URL_PREFIX = "/lethe-reports"
# Only what report.write and report_html.write_index produce: no path separators, no dot files.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(html|json)")
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def report_dir() -> Path:
    """The directory the DAGs write reports to (dags/lethe_policies.py resolves it the same way)."""
    return Path(os.environ.get("LETHE_REPORT_DIR") or Path(__file__).resolve().parents[1] / "reports")


def _serve(name: str) -> FileResponse:
    from pipelines import report

    if not _FILE_NAME.fullmatch(name):
        raise HTTPException(status_code=404)
    directory = report_dir()
    stem, _, suffix = name.rpartition(".")
    try:
        path = report.safe_path(directory, stem, f".{suffix}")
    except Exception as exc:  # InputError: a name that could climb out of the directory
        raise HTTPException(status_code=404) from exc
    if name == "index.html" and not path.exists() and directory.is_dir():
        from pipelines import report_html

        report_html.write_index(directory)  # a directory written before the HTML half existed
    if not path.is_file():
        raise HTTPException(status_code=404)
    media = "text/html; charset=utf-8" if suffix == "html" else "application/json"
    return FileResponse(path, media_type=media, headers=_HEADERS)


def create_app() -> FastAPI:
    app = FastAPI(title="Lethe reports", dependencies=[Depends(requires_authenticated())],
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/")
    def index() -> FileResponse:
        return _serve("index.html")

    @app.get("/{name}")
    def file(name: str) -> FileResponse:
        return _serve(name)

    return app


class LethePlugin(AirflowPlugin):
    name = "lethe"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Lethe reports"}]
    external_views = [{
        "name": "Lethe reports",
        "href": f"{URL_PREFIX}/",  # the index links to run pages relatively, so keep the trailing slash
        "url_route": "lethe_reports",
        "destination": "nav",
        "category": "browse",
    }]
