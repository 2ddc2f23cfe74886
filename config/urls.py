"""URL settings checked when the configuration loads, so a typo fails at start-up, not at every poll.

Web URLs (a source's ``url``/``*_url``, ``slack.api_url``) must be http(s) with a host: anything
else would only fail later as a connection error, which is retried as if it were transient. The
database URL must name a backend repmon runs on (SQLite, PostgreSQL) with a driver that is
installed; :func:`database_url_problem` says what to write instead, and the command line uses the
same words for a URL that comes from the environment.
"""

from __future__ import annotations

import importlib.util
import re
from urllib.parse import urlsplit

__all__ = ["database_url_problem", "http_url", "http_url_problem", "is_url_setting"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
#: Drivers repmon's synchronous engine can use, by the module that must be importable.
_PG_DRIVERS = (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2"))


def is_url_setting(key: str) -> bool:
    """Whether an option named ``key`` holds a web URL (``url``, ``api_url``, ``instance_url`` …)."""
    return key == "url" or key.endswith("_url")


def http_url_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute http(s) URL with a host (None when it is one)."""
    example = "write a full URL like https://example.org/feed.xml"
    text = value.strip()
    if not text:
        return f"empty URL; {example}"
    if any(c.isspace() for c in text):
        return f"{value!r} is not a URL (it contains spaces); {example}"
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme is not None else ""
    if scheme is None or "." in scheme.group(1) or rest[:1].isdigit():
        # `slack.com/api`, `example.org:8080/feed`, `localhost:8080`: a host without the scheme
        return f"{value!r} has no scheme; write https://{text.removeprefix('//')}"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"{value!r} is not a valid URL: {exc}"
    if parts.scheme.lower() not in {"http", "https"}:
        if parts.scheme.lower() == "file":
            return f"{value!r}: only http:// and https:// URLs are fetched, not files"
        return f"{value!r}: the scheme {parts.scheme!r} is not http or https; {example}"
    if not parts.hostname:
        rest = rest.lstrip("/")
        fix = f"write {parts.scheme}://{rest}" if rest else example
        return f"{value!r} has no host; {fix}"
    return None


def http_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host; a pydantic validator for URL settings."""
    problem = http_url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


def database_url_problem(url: str) -> str | None:
    """Why repmon cannot use the SQLAlchemy URL ``url`` (None when it can); never shows a password.

    Checked without connecting: that the URL parses, names SQLite or PostgreSQL, and that the
    driver it needs is installed (``postgres://`` is not a SQLAlchemy name: ``postgresql+psycopg://``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            f"not a database URL; write e.g. sqlite:///var/repmon.db or {_pg_scheme()}://USER@HOST/DATABASE"
        )
    backend = parsed.get_backend_name()
    if backend != "postgresql" and backend.startswith(("postgres", "pgsql", "psql")):
        return f"{parsed.drivername}:// is not a database scheme SQLAlchemy knows; {_pg_advice()}"
    if backend not in {"sqlite", "postgresql"}:
        return (
            f"repmon stores its data in SQLite or PostgreSQL, not {backend!r}; write e.g. "
            f"sqlite:///var/repmon.db or {_pg_scheme()}://USER@HOST/DATABASE"
        )
    try:
        dialect = parsed.get_dialect()
    except ArgumentError:  # NoSuchModuleError: an unknown driver after '+'
        advice = _pg_advice() if backend == "postgresql" else "write sqlite:///PATH"
        return f"unknown database driver in {parsed.drivername!r}; {advice}"
    if getattr(dialect, "is_async", False):
        advice = _pg_advice() if backend == "postgresql" else "write sqlite:///PATH"
        return f"{parsed.drivername!r} is an asyncio driver, which repmon does not use; {advice}"
    try:
        dialect.import_dbapi()
    except ImportError:
        driver = getattr(dialect, "driver", parsed.drivername)
        if backend == "postgresql":
            return f"the PostgreSQL driver {driver!r} that {parsed.drivername}:// uses is not installed; {_pg_advice()}"
        return f"the database driver {driver!r} is not installed"
    return None


def _installed_pg_driver() -> str | None:
    """The scheme of the first PostgreSQL driver that is installed (None when there is none)."""
    for module, scheme in _PG_DRIVERS:
        if importlib.util.find_spec(module) is not None:
            return scheme
    return None


def _pg_scheme() -> str:
    return _installed_pg_driver() or "postgresql+psycopg"


def _pg_advice() -> str:
    scheme = _installed_pg_driver()
    if scheme is None:
        return (
            "write postgresql+psycopg://USER@HOST/DATABASE and install the driver "
            "(pip install 'repmon[postgres]', which brings psycopg)"
        )
    return f"write {scheme}://USER@HOST/DATABASE ({scheme.partition('+')[2]} is installed)"
