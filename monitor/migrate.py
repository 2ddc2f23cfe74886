"""Schema migrations with Alembic, runnable from the CLI (``repmon db upgrade``) and from code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from monitor.db import Database

__all__ = ["alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
#: Advisory lock key that serialises concurrent upgrades of one PostgreSQL database.
_UPGRADE_LOCK = 0x7265706D  # "repm"


def alembic_config(db: Database) -> Config:
    """An Alembic configuration pointing at our migrations and ``db``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Alembic reads this through ConfigParser: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent; daemons starting together take turns)."""
    cfg = alembic_config(db)
    if not db.is_postgres:
        command.upgrade(cfg, revision)
        return
    with db.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _UPGRADE_LOCK})
        connection.commit()
        try:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _UPGRADE_LOCK})
            connection.commit()
