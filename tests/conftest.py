"""Session fixtures: a real PostgreSQL server, fresh stores on SQLite and PostgreSQL, a test key."""

from __future__ import annotations

import secrets

import pytest

from tests.support import pgserver


@pytest.fixture(scope="session")
def pg():
    server = pgserver.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return pg.url(pg.create_database("store"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The same test on the embedded default and on the production store."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    pg = request.getfixturevalue("pg")
    return pg.url(pg.create_database("store"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_and_vault(request, tmp_path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}", f"sqlite:///{tmp_path / 'vault.db'}"
    pg = request.getfixturevalue("pg")
    return pg.url(pg.create_database("store")), pg.url(pg.create_database("vault"))


@pytest.fixture
def pseudonym_key(monkeypatch) -> str:
    """A random key per test, exported as LETHE_PSEUDONYM_KEY (never a literal)."""
    key = secrets.token_hex(32)
    monkeypatch.setenv("LETHE_PSEUDONYM_KEY", key)
    return key


def pytest_collection_modifyitems(items):
    """Start the `slow` tests first: the month-long Airflow backfill is most of the suite's wall time,
    and begun first it runs on one worker while the other works through everything else.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
