"""pytest fixtures for source tests: one local HTTP server per session, one fresh script per test.

Test modules load these with ``pytest_plugins = ["tests.replay_fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.replay_server import LocalServer, Script


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    """One local HTTP server for the whole session."""
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def script(local_server: LocalServer) -> Script:
    """A fresh script (routes + request log) on the shared server."""
    return local_server.script()


@pytest.fixture(scope="session")
def other_server() -> Iterator[LocalServer]:
    """A second local server: another origin (its own port), for redirects to another host."""
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def other_script(other_server: LocalServer) -> Script:
    """A fresh script on the second server."""
    return other_server.script()
