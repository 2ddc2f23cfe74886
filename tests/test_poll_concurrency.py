"""How many sources poll at once: many feeds on one host never all fetch at the same moment.

The feeds are served by the local HTTP server, which counts the requests it is answering at once.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from config.settings import DaemonSettings
from monitor.coordinator import SourceCoordinator
from monitor.daemon import Daemon
from monitor.runtime import Runtime
from tests.pipeline_util import load, make_runtime
from tests.replay_server import Reply, Request, Script

pytest_plugins = ["tests.replay_fixtures"]

FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Rail news</title>
<item><title>Acme Rail news</title><link>https://news.example/1</link></item>
</channel></rss>"""


class SlowHost:
    """Answers every feed after a short while, counting how many requests it holds at once."""

    def __init__(self, hold: float = 0.03) -> None:
        self.hold = hold
        self.active = 0
        self.peak = 0
        self.served = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.hold)  # the server thread, not the test: a slow host
        with self._lock:
            self.active -= 1
            self.served += 1
        return Reply(200, [("Content-Type", "application/rss+xml")], FEED)


def _runtime(tmp_path: Path, script: Script, feeds: int, limit: int) -> Runtime:
    sources = "".join(
        f"  - name: feed-{i}\n    type: rss\n    url: {script.base_url}/feed-{i}.xml\n    interval: 10m\n"
        for i in range(feeds)
    )
    config = load(
        f"""
storage:
  url: sqlite:///{tmp_path / "c.db"}
  url_env: null
brands:
  - name: Acme Rail
    keywords: ["acme rail"]
sources:
{sources}
daemon:
  health_port: null
  max_concurrent_polls: {limit}
"""
    )
    runtime, _ = make_runtime(config, tmp_path)
    return runtime


async def test_polls_of_many_feeds_on_one_host_are_bounded(tmp_path: Path, script: Script) -> None:
    host = SlowHost()
    script.fallback(host)
    runtime = _runtime(tmp_path, script, feeds=24, limit=3)
    try:
        outcomes = await runtime.poll_all()
    finally:
        await runtime.aclose()
    assert all(o.ok for o in outcomes) and host.served == 24
    assert host.peak <= 3


async def test_first_polls_are_spread_only_when_sources_outnumber_the_slots(
    tmp_path: Path, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    spreads: list[float] = []

    async def run(
        self: SourceCoordinator, stop: asyncio.Event, on_stored: Any = None, *, start_spread: float = 0
    ) -> None:
        spreads.append(start_spread)

    monkeypatch.setattr(SourceCoordinator, "run", run)
    for feeds, expected in ((3, 0.0), (4, DaemonSettings().startup_spread)):
        spreads.clear()
        (tmp_path / str(feeds)).mkdir()
        runtime = _runtime(tmp_path / str(feeds), script, feeds=feeds, limit=3)
        daemon = Daemon(runtime)
        daemon._start_sources()
        await asyncio.gather(*daemon._source_tasks.values())
        await runtime.aclose()
        assert spreads == [expected] * feeds


def test_first_poll_waits_at_most_the_spread_and_the_interval(tmp_path: Path, script: Script) -> None:
    runtime = _runtime(tmp_path, script, feeds=1, limit=3)
    coordinator = runtime.coordinators["feed-0"]
    coordinator.rng = random.Random(3)
    waits = [coordinator.start_delay(60.0) for _ in range(200)]
    assert all(0 <= w <= 60 for w in waits) and max(waits) - min(waits) > 30
    assert all(coordinator.start_delay(10_000.0) <= 600 for _ in range(200))
    assert coordinator.start_delay(0.0) == 0.0
    runtime.db.dispose()
