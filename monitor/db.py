"""Database engine and sessions: SQLite (WAL, busy timeout) by default, PostgreSQL for teams."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import StorageSettings

__all__ = ["Database", "database_url", "redact_url"]

#: How long SQLite waits for a lock held by another connection or process (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: PostgreSQL: seconds to establish a connection (a server that accepts but never answers, such as
#: a stopped postmaster, fails after this instead of hanging the caller forever).
PG_CONNECT_TIMEOUT = 10
#: PostgreSQL: a statement running this long is stuck (ms); waiting this long for a lock, too.
PG_STATEMENT_TIMEOUT_MS = 300_000
PG_LOCK_TIMEOUT_MS = 60_000


def database_url(storage: StorageSettings, env: Mapping[str, str] | None = None) -> str:
    """The effective database URL: the environment override, else the configured one."""
    env = os.environ if env is None else env
    if storage.url_env and env.get(storage.url_env):
        return env[storage.url_env]
    return storage.url


def redact_url(url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL must still never be printed raw
        return "<unparsable database url>"


class Database:
    """Owns the engine and hands out sessions; knows whether it talks to SQLite or PostgreSQL."""

    def __init__(self, url: str, *, pool_size: int = 5, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = _pg_connect_args(parsed.query)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._connect_args: dict[str, Any] = kwargs.get("connect_args", {})
        self._read_engine: Engine | None = None
        self._read_sessions: sessionmaker[Session] | None = None

    @property
    def is_postgres(self) -> bool:
        """Whether row locking (FOR UPDATE SKIP LOCKED) and advisory locks are available."""
        return self.dialect == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads that must not queue behind writers (health, status, gauges).

        On SQLite every writing session takes the write lock up front (BEGIN IMMEDIATE), so a plain
        session would wait for a long write; this one reads the last committed state (WAL readers
        never block). On PostgreSQL it is an ordinary session.
        """
        if self.dialect != "sqlite":
            with self.session() as session:
                yield session
            return
        if self._read_sessions is None:
            # Same file and pragmas, but without the BEGIN IMMEDIATE listener: plain autocommit reads.
            self._read_engine = create_engine(self.url, future=True, connect_args=self._connect_args)
            event.listen(self._read_engine, "connect", _sqlite_pragmas)
            self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        with self._read_sessions() as session:
            yield session

    def has_schema(self) -> bool:
        """Whether the tables exist (``repmon db upgrade`` has run)."""
        return inspect(self.engine).has_table("mentions")

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)})"


def _pg_connect_args(query: Mapping[str, Any]) -> dict[str, Any]:
    """Timeouts and TCP keepalives for libpq, unless the URL sets them itself.

    A database that stops answering (a hung server, a stalled network) then fails a call instead
    of hanging it; callers on the event loop bound their wait for a worker thread on top of this.
    """
    args: dict[str, Any] = {
        "connect_timeout": PG_CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_LOCK_TIMEOUT_MS}",
    }
    return {key: value for key, value in args.items() if key not in query}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is disabled so that BEGIN IMMEDIATE below takes the
    # write lock up front: concurrent writers then wait (busy timeout) instead of failing.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
