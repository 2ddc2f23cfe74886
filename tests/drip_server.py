"""A local HTTP server that sends its headers at once and then trickles the body, a byte at a time.

httpx's timeout applies to each read, so a server like this never trips it: only a bound on the
whole request does. Every request (any method, any path) gets the same slow answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def drip_server(every: float = 0.05, content_type: str = "application/rss+xml") -> AsyncIterator[str]:
    """Serve on 127.0.0.1 and yield the base URL; one byte every ``every`` seconds, never done."""
    handlers: set[asyncio.Task[None]] = set()
    closing = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request head; a request body is ignored
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 1000000\r\n\r\n".encode()
            )
            await writer.drain()
            # Until the client hangs up (it gave up: that is the point) or the server closes.
            while not closing.is_set() and not reader.at_eof():
                await asyncio.sleep(every)
                writer.write(b" ")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            handlers.discard(task)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        closing.set()
        if handlers:
            # Handlers end on their own (a cancelled one trips asyncio's stream callback in 3.11).
            await asyncio.wait(list(handlers), timeout=5)
        await server.wait_closed()
