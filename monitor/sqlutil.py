"""Small dialect-aware SQL helpers (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

__all__ = ["insert_ignore", "lock_skip", "upsert"]


def _insert(session: Session, table: Any) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}; use SQLite or PostgreSQL")


def insert_ignore(session: Session, table: Any, values: dict[str, Any], returning: Any = None) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING; returns the RETURNING value or None when it existed."""
    stmt = _insert(session, table).values(**values).on_conflict_do_nothing()
    if returning is not None:
        return session.execute(stmt.returning(returning)).scalar_one_or_none()
    session.execute(stmt)
    return None


def upsert(session: Session, table: Any, values: dict[str, Any], keys: list[str], update: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET the ``update`` columns."""
    stmt = _insert(session, table).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    session.execute(stmt)


def lock_skip(session: Session, stmt: Select[Any]) -> Select[Any]:
    """Add FOR UPDATE SKIP LOCKED on PostgreSQL, so daemons claim disjoint rows; SQLite has one writer."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt
