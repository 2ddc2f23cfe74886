"""A local HTTP server on 127.0.0.1 for source tests: replays recordings or runs test handlers.

One server runs for the whole test session. Each test gets a :class:`Script` with its own URL
prefix (``http://127.0.0.1:PORT/s17``) so tests never see each other's routes; a source under test
gets that prefix as its base URL. Routes either replay recorded responses in order (per method and
path) or call a function with the request. Every request is kept for assertions, and requests no
route expected are listed in ``Script.overruns``.
"""

from __future__ import annotations

import functools
import itertools
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sources.base import SourceContext

_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass
class Request:
    """A request the server received (path relative to the script's prefix)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    """A response to send."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, payload: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply."""
        import json

        extra = list((headers or {}).items())
        return cls(
            status,
            [("Content-Type", "application/json; charset=utf-8"), *extra],
            json.dumps(payload).encode(),
        )


Handler = Callable[[Request], Reply]


class Script:
    """The routes of one test under its own prefix."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests: list[Request] = []
        self.overruns: list[Request] = []
        self._queues: dict[tuple[str, str], list[Reply]] = {}
        self._served: dict[tuple[str, str], int] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._fallback: Handler | None = None
        self._lock = threading.Lock()

    def queue(self, method: str, path: str, reply: Reply) -> None:
        """Serve ``reply`` once for the next ``method path`` request (in queue order)."""
        self._queues.setdefault((method.upper(), _norm(path)), []).append(reply)

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer every ``method path`` request with ``handler``."""
        self._handlers[(method.upper(), _norm(path))] = handler

    def fallback(self, handler: Handler) -> None:
        """Answer requests no other route matches."""
        self._fallback = handler

    def pending(self, method: str | None = None, path: str | None = None) -> int:
        """How many queued replies were not served yet (optionally for one route)."""
        with self._lock:
            total = 0
            for (m, p), replies in self._queues.items():
                if (method is None or m == method.upper()) and (path is None or p == _norm(path)):
                    total += len(replies) - self._served.get((m, p), 0)
            return total

    def served(self, method: str, path: str) -> list[Request]:
        """The requests received for one route."""
        return [r for r in self.requests if r.method == method.upper() and _norm(r.path) == _norm(path)]

    def answer(self, request: Request) -> Reply:
        """Pick the reply for ``request``."""
        key = (request.method, _norm(request.path))
        with self._lock:
            self.requests.append(request)
            queue = self._queues.get(key)
            if queue is not None:
                index = self._served.get(key, 0)
                if index < len(queue):
                    self._served[key] = index + 1
                    return queue[index]
        handler = self._handlers.get(key) or self._fallback
        if handler is not None:
            return handler(request)
        with self._lock:
            self.overruns.append(request)
        return Reply(404, [("Content-Type", "text/plain")], b"not recorded")


def _norm(path: str) -> str:
    return path.rstrip("/") or "/"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    scripts: dict[str, Script]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers are written piecewise: without this, Nagle + delayed ACK add ~40 ms per request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        parts = split.path.split("/", 2)
        prefix = "/" + parts[1] if len(parts) > 1 else "/"
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        script = self.server.scripts.get(prefix)
        if script is None:
            reply = Reply(404, [], b"no such script")
        else:
            request = Request(
                method=self.command,
                path=rest,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = script.answer(request)
        self.send_response_only(reply.status)
        for key, value in reply.headers:
            if key.lower() not in _HOP_HEADERS:
                self.send_header(key, value)
        has_body = self.command != "HEAD" and reply.status not in (204, 304) and reply.status >= 200
        self.send_header("Content-Length", str(len(reply.body) if has_body else 0))
        self.end_headers()
        if has_body:
            self.wfile.write(reply.body)

    do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _handle


class LocalServer:
    """The session's server; hands out scripts with unique prefixes."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.scripts = {}
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._ids = itertools.count(1)
        host, port = self._server.server_address[:2]
        self.origin = f"http://{host!s}:{port}"

    def script(self) -> Script:
        """A new, empty script under a fresh prefix."""
        prefix = f"/s{next(self._ids)}"
        script = Script(self.origin + prefix)
        self._server.scripts[prefix] = script
        return script

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class FakeClock:
    """An injectable clock that tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2024, 1, 15, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for all test clients (building one per client costs ~50 ms)."""
    return ssl.create_default_context()


def make_ctx(env: Mapping[str, str] | None = None, clock: FakeClock | None = None) -> SourceContext:
    """A SourceContext with real httpx clients (talking to the local server) and a fake clock."""

    def client(**kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("trust_env", False)
        kwargs.setdefault("verify", _tls_context())
        return httpx.AsyncClient(**kwargs)

    return SourceContext(env=dict(env or {}), http_client=client, clock=clock or FakeClock())
