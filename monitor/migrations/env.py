"""Alembic environment: runs migrations on the connection or engine handed over by monitor.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from monitor.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


def run_migrations() -> None:
    """Run migrations online, on the caller's connection or engine when there is one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)


run_migrations()
