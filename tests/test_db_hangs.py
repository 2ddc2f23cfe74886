"""A database that refuses or hangs: /healthz answers 503 promptly and a stop always completes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from monitor.daemon import Daemon
from monitor.db import Database
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.pipeline_util import config_text, load, post, write_jsonl

#: Nothing listens on the discard port: the database refuses connections.
REFUSING_URL = "postgresql+psycopg://postgres@127.0.0.1:9/repmon"


class ClosingNotifier(CapturingNotifier):
    """Remembers that it was closed."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True


def _runtime(
    tmp_path: Path, *, db: Database | None = None, notifier: CapturingNotifier | None = None
) -> Runtime:
    replay = write_jsonl(tmp_path / "posts.jsonl", [post(1, "Acme Rail is brilliant", minutes=1)])
    second = f"  - name: second\n    type: replay\n    path: {replay}\n"
    text = config_text(f"sqlite:///{tmp_path / 'h.db'}", replay, extra_sources=second)
    return Runtime(
        load(text.replace("health_port: null", "health_port: 0")),
        notifier=notifier or CapturingNotifier(),
        classifier=StubClassifier(),
        env={},
        db=db,
    )


async def test_aclose_goes_on_when_the_database_refuses_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = ClosingNotifier()
    runtime = _runtime(tmp_path, db=Database(REFUSING_URL), notifier=notifier)
    closed: list[str] = []
    for coordinator in runtime.coordinators.values():

        async def aclose(name: str = coordinator.name) -> None:
            closed.append(name)

        coordinator.source.aclose = aclose  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="repmon.runtime"):
        await runtime.aclose()  # no exception
    assert sorted(closed) == sorted(runtime.coordinators) and len(closed) == 2
    assert notifier.closed
    lines = [r.getMessage() for r in caplog.records if r.name == "repmon.runtime"]
    assert len(lines) == 1 and "hand the source leases and heartbeat back" in lines[0]
    assert "Traceback" not in caplog.text


async def test_aclose_does_not_wait_for_a_hung_database(tmp_path: Path) -> None:
    notifier = ClosingNotifier()
    runtime = _runtime(tmp_path, notifier=notifier)
    upgrade(runtime.db)
    release = threading.Event()

    def hung() -> None:
        release.wait(30)

    runtime._release_leases = hung  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        await runtime.aclose(timeout=0.5)
        assert time.monotonic() - started < 3
        assert notifier.closed
    finally:
        release.set()


async def test_healthz_answers_503_while_the_database_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(tmp_path)
    upgrade(runtime.db)
    release = threading.Event()
    calls: list[int] = []

    def hung_report(_runtime: Runtime) -> dict[str, object]:
        calls.append(1)
        release.wait(30)
        return {"status": "ok"}

    monkeypatch.setattr("monitor.health.health_report", hung_report)
    runtime.health_probe.timeout = 0.3
    daemon = Daemon(runtime, roles=frozenset({"alert"}))
    task = asyncio.create_task(daemon.run())
    try:
        while daemon.health_port in (None, 0):
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.health_port}") as client:
            for _ in range(3):
                started = time.monotonic()
                response = await client.get("/healthz", timeout=10)
                assert response.status_code == 503
                assert response.json()["status"] == "down"
                assert time.monotonic() - started < 2
        assert len(calls) == 1  # one stuck probe, not one thread per request
    finally:
        release.set()
        daemon.stop.set()
        await asyncio.wait_for(task, 30)


def test_the_process_exits_0_while_a_database_call_hangs(tmp_path: Path) -> None:
    script = """
import asyncio, threading
from monitor.runtime import run_daemon

async def main():
    stuck = asyncio.ensure_future(asyncio.to_thread(threading.Event().wait))  # never returns
    await asyncio.sleep(0.1)
    stuck.cancel()

run_daemon(main(), grace=0.5)
"""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    assert "Traceback" not in done.stderr
