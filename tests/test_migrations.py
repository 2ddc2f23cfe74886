"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from monitor import models
from monitor.db import Database
from monitor.migrate import upgrade


def test_migrations_match_the_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        upgrade(db)
        upgrade(db)  # idempotent
        assert "digest_posts" in inspect(db.engine).get_table_names()
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), models.Base.metadata)
        assert differences == []
    finally:
        db.dispose()
