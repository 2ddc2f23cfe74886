"""Schema migrations with Alembic, runnable from the CLI (``repmon db upgrade``) and from code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from monitor.db import Database

__all__ = ["alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(db: Database) -> Config:
    """An Alembic configuration pointing at our migrations and ``db``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Alembic reads this through ConfigParser: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(db), revision)
