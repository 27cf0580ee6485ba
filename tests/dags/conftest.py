"""Real Airflow for the DAG tests: a throwaway AIRFLOW_HOME migrated once per session, and a seeded store.

Airflow reads its configuration when first imported, so every Airflow call here runs in a fresh
interpreter (subprocess) with the environment built by `airflow_env`; the pytest process never
imports Airflow.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
BIN = Path(sys.executable).parent
SEED_AS_OF = "2026-06-30"
SEED_ROWS = 2000
POLICY = Path(__file__).with_name("policy.yaml.in")


def airflow_env(home: Path, policy_dir: Path, report_dir: Path, key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETHE_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "LETHE_POLICY_DIR": str(policy_dir),
        "LETHE_REPORT_DIR": str(report_dir),
        "LETHE_RETRY_DELAY_SECONDS": "1",
        # the policy's key is `airflow:lethe_pseudonym_key`: a Variable, here from the environment
        "AIRFLOW_VAR_LETHE_PSEUDONYM_KEY": key,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    })
    env.update(extra)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 300, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd[:3]} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def write_policy(policy_dir: Path, stem: str, store: str, vault: str) -> Path:
    policy_dir.mkdir(parents=True, exist_ok=True)
    path = policy_dir / f"{stem}.yaml"
    path.write_text(POLICY.read_text().replace("@STORE@", store).replace("@VAULT@", vault))
    return path


def seed(store_url: str, env: dict[str, str]) -> None:
    run([str(BIN / "lethe"), "seed", "--store", store_url, "--rows", str(SEED_ROWS), "--as-of", SEED_AS_OF], env)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """An AIRFLOW_HOME with a migrated SQLite metadata database (once per session)."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_env(home, home / "policies", home / "reports", "x" * 64)
    run([str(BIN / "airflow"), "db", "migrate"], env, timeout=600)
    return home


@pytest.fixture
def lethe_key() -> str:
    return secrets.token_hex(32)
