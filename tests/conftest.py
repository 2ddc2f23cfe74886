"""Shared fixtures: paths to shared data, temporary databases, a PostgreSQL URL when available."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REPMON_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture
def shared_dir() -> Path:
    """The shared data folder (../shared), skipping when absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED / "data"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'repmon.db'}"


def _pg_base() -> str | None:
    return os.environ.get("REPMON_TEST_PG_URL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (created and dropped per test) when REPMON_TEST_PG_URL is set."""
    base = _pg_base()
    if not base:
        if os.environ.get("REPMON_REQUIRE_PG"):
            pytest.fail("REPMON_REQUIRE_PG is set but REPMON_TEST_PG_URL is not")
        pytest.skip("REPMON_TEST_PG_URL not set (make test starts a PostgreSQL server)")
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"repmon_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'repmon.db'}"
    else:
        yield request.getfixturevalue("pg_url")
