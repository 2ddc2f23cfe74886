"""Misbehaving remote sources, through the real source classes and a local HTTP server.

A feed that serves random bytes, truncated XML or an HTML error page; an X-like API that answers
non-JSON, 5xx, hangs past the timeout, or 429 with ``x-rate-limit-reset``; a feed that answers 429
with ``Retry-After``. Each backs off as specified (server reset times honoured, exponential backoff
with jitter otherwise), the other sources keep flowing, and health rows, ``/healthz`` and metrics
say what happened. After recovery every post is stored exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.testing import CapturingNotifier
from classifiers.testing import StubClassifier
from monitor import models
from monitor.clock import FakeClock
from monitor.coordinator import BASE_BACKOFF
from monitor.daemon import health_report
from monitor.migrate import upgrade
from monitor.runtime import Runtime
from tests.drip_server import drip_server
from tests.pipeline_util import T0, load, post, write_jsonl
from tests.replay_server import Reply, Request, Script

pytest_plugins = ["tests.replay_fixtures"]
# feedparser warns when sources/rss.py asks for ``updated_parsed`` of an RSS item with only a pubDate.
pytestmark = pytest.mark.filterwarnings("ignore:To avoid breaking existing software:DeprecationWarning")

TOKEN = "x-test-bearer-faults-0123456789"
NOW = T0 + timedelta(days=1)

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Rail news</title><link>https://news.example/</link>
{items}
</channel></rss>"""
ITEM = """<item><title>Acme Rail news {n}</title><link>https://news.example/{n}</link>
<guid>https://news.example/{n}</guid><pubDate>Mon, 02 Mar 2026 0{h}:00:00 +0000</pubDate>
<description>Acme Rail timetable item {n}</description></item>"""


def _feed(ns: range) -> bytes:
    return RSS.format(items="\n".join(ITEM.format(n=n, h=n % 9) for n in ns)).encode()


def _xml(body: bytes) -> Reply:
    return Reply(200, [("Content-Type", "application/rss+xml")], body)


def _tweets(ids: list[int]) -> Reply:
    return Reply.json(
        {
            "data": [
                {
                    "id": str(i),
                    "text": f"Acme Rail is brilliant today, thanks {i}",
                    "author_id": "42",
                    "created_at": "2026-03-02T09:00:00.000Z",
                    "lang": "en",
                }
                for i in sorted(ids, reverse=True)
            ],
            "includes": {
                "users": [
                    {
                        "id": "42",
                        "username": "rider",
                        "name": "Rider",
                        "public_metrics": {"followers_count": 7},
                    }
                ]
            },
            "meta": {"result_count": len(ids), "newest_id": str(max(ids))},
        }
    )


class Steps:
    """Answers a route with scripted replies in turn; the last one repeats."""

    def __init__(self, *replies: Reply | str) -> None:
        self.replies = list(replies)
        self.served = 0

    def __call__(self, request: Request) -> Reply:
        step = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        if step == "hang":
            time.sleep(0.6)  # longer than the source's timeout
            return Reply(200, [], b"{}")
        assert isinstance(step, Reply)
        return step


def _config(db: Path, script: Script, replay: Path) -> str:
    return f"""
storage:
  url: sqlite:///{db}
  url_env: null
brands:
  - name: Acme Rail
    handles: ["@acmerail"]
    keywords: ["acme rail"]
sources:
  - name: replay
    type: replay
    path: {replay}
    batch_size: 10
  - name: feed-garbage
    type: rss
    url: {script.base_url}/garbage.xml
    timeout: 0.3
  - name: feed-limited
    type: rss
    url: {script.base_url}/limited.xml
  - name: x-broken
    type: x
    queries: ["acme rail"]
    api_url: {script.base_url}
    timeout: 0.3
  - name: x-limited
    type: x
    queries: ["acme rail lang:nl"]
    api_url: {script.base_url}/limited
alerts:
  group_wait: 0s
  group_interval: 0s
spikes:
  clock: data
daemon:
  health_port: null
  max_backoff: 1h
"""


@pytest.fixture
def runtime(tmp_path: Path, script: Script) -> Any:
    replay = write_jsonl(
        tmp_path / "replay.jsonl", [post(i, f"Acme Rail trip {i}", minutes=i) for i in range(50)]
    )
    rt = Runtime(
        load(_config(tmp_path / "faults.db", script, replay)),
        notifier=CapturingNotifier(),
        classifier=StubClassifier(),
        clock=FakeClock(NOW),
        env={"X_BEARER_TOKEN": TOKEN},
    )
    upgrade(rt.db)
    for coordinator in rt.coordinators.values():
        coordinator.rng = random.Random(7)
    yield rt


def _errors(rt: Runtime, source: str, reason: str) -> float:
    return rt.metrics.source_errors.labels(source, reason)._value.get()


def _health(rt: Runtime, source: str) -> models.SourceHealth:
    with rt.db.session() as session:
        row = session.get(models.SourceHealth, source)
        assert row is not None
        return row


async def test_bad_sources_back_off_and_report_while_others_flow(runtime: Runtime, script: Script) -> None:
    rt = runtime
    clock = rt.clock
    assert isinstance(clock, FakeClock)
    garbage = Steps(
        _xml(random.Random(1).randbytes(4000)),  # random bytes
        Reply(200, [("Content-Type", "text/html")], b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        Reply(503, [("Content-Type", "text/html")], b"<html>down</html>"),
        "hang",  # a timeout
        _xml(_feed(range(1, 4))),  # recovered
    )
    script.route("GET", "/garbage.xml", garbage)
    limited_feed = Steps(Reply(429, [("Retry-After", "120")], b""), _xml(_feed(range(10, 12))))
    script.route("GET", "/limited.xml", limited_feed)
    broken_x = Steps(
        Reply(200, [("Content-Type", "text/html")], b"<html>Something went wrong</html>"),  # not JSON
        Reply(200, [("Content-Type", "application/json")], b'{"data": [{"id": "1"'),  # truncated JSON
        Reply(500, [], b"oops"),
        "hang",
        _tweets([1790000000000000001, 1790000000000000002]),
    )
    script.route("GET", "/2/tweets/search/recent", broken_x)
    reset = int(clock.now().timestamp()) + 900
    limited_x = Steps(
        Reply.json(
            {"title": "Too Many Requests"},
            429,
            {"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"},
        ),
        _tweets([1790000000000000101]),
    )
    script.route("GET", "/limited/2/tweets/search/recent", limited_x)

    c = rt.coordinators
    # Round 1: every bad source fails in its own way; replay stores its first page regardless.
    outcomes = {name: await c[name].poll_once() for name in c}
    assert outcomes["replay"].ok and outcomes["replay"].stats and outcomes["replay"].stats.inserted == 10
    assert not outcomes["feed-garbage"].ok and "could not be parsed" in (outcomes["feed-garbage"].error or "")
    assert not outcomes["x-broken"].ok and "not JSON" in (outcomes["x-broken"].error or "")
    # Server reset times are honoured exactly: Retry-After seconds, x-rate-limit-reset epoch.
    assert outcomes["feed-limited"].delay == 120.0
    assert outcomes["x-limited"].delay == pytest.approx(900, abs=1)
    assert _errors(rt, "feed-limited", "rate_limited") == 1 and _errors(rt, "x-limited", "rate_limited") == 1

    # Rounds 2-4: garbage → HTML page → 503 → timeout; X: truncated JSON → 500 → timeout.
    delays: dict[str, list[float]] = {
        "feed-garbage": [outcomes["feed-garbage"].delay],
        "x-broken": [outcomes["x-broken"].delay],
    }
    for _ in range(3):
        for name in ("feed-garbage", "x-broken"):
            outcome = await c[name].poll_once()
            assert not outcome.ok, (name, outcome)
            delays[name].append(outcome.delay)
        assert (await c["replay"].poll_once()).ok  # unaffected
    for name, ds in delays.items():
        # Exponential backoff with jitter: failure k waits within [ceiling/2, ceiling], ceiling = 30 s · 2^(k-1).
        for k, delay in enumerate(ds, start=1):
            ceiling = BASE_BACKOFF * 2 ** (k - 1)
            assert ceiling / 2 <= delay <= ceiling, (name, k, delay)
    assert _errors(rt, "feed-garbage", "source") == 2  # unparsable bodies
    assert _errors(rt, "feed-garbage", "transient") == 2  # 503 and the timeout
    assert _errors(rt, "x-broken", "transient") == 4  # non-JSON, truncated JSON, 500, timeout
    assert "timeout" in (_health(rt, "x-broken").last_error or "")

    # Health: failing sources are visible with their errors; the daemon reports itself degraded.
    report = health_report(rt)
    sources: Any = report["sources"]
    assert report["status"] == "degraded"
    assert sources["feed-garbage"]["consecutive_failures"] == 4
    assert sources["x-broken"]["consecutive_failures"] == 4
    assert sources["feed-limited"]["consecutive_failures"] == 1
    assert sources["replay"]["consecutive_failures"] == 0 and sources["replay"]["mentions_total"] == 40
    assert rt.metrics.source_up.labels("feed-garbage")._value.get() == 0
    assert rt.metrics.source_up.labels("replay")._value.get() == 1
    assert rt.metrics.polls.labels("x-broken", "error")._value.get() == 4

    # Recovery: each source comes back after its wait, stores its posts once; health is clean again.
    clock.advance(900)
    for name in ("feed-garbage", "feed-limited", "x-broken", "x-limited"):
        outcome = await c[name].poll_once()
        assert outcome.ok, (name, outcome.error)
        again = await c[name].poll_once()  # conditional GET / since_id: nothing new, nothing twice
        assert again.ok and again.stats is not None and again.stats.inserted == 0
    while (await c["replay"].poll_once()).more:
        pass
    report = health_report(rt)
    healths: Any = report["sources"]
    assert report["status"] == "ok"
    assert all(s["consecutive_failures"] == 0 for s in healths.values())
    with rt.db.session() as session:
        per_source = dict(
            session.execute(
                select(models.Mention.source_name, func.count()).group_by(models.Mention.source_name)
            ).all()
        )
    assert per_source == {"replay": 50, "feed-garbage": 3, "feed-limited": 2, "x-broken": 2, "x-limited": 1}
    assert rt.metrics.mentions_stored.labels("x-broken")._value.get() == 2
    await rt.aclose()


async def test_truncated_feed_keeps_usable_entries_and_stores_the_rest_later(
    runtime: Runtime, script: Script
) -> None:
    """An ill-formed feed cut off mid-entry is accepted for its usable entries (bozo) without losses."""
    rt = runtime
    full = _feed(range(1, 6))
    cut = full[: full.index(b"<item><title>Acme Rail news 4")] + b"<item><title>Acme Rail ne"
    script.route("GET", "/garbage.xml", Steps(_xml(cut), _xml(full)))
    coordinator = rt.coordinators["feed-garbage"]
    first = await coordinator.poll_once()
    assert first.ok and first.stats is not None and first.stats.inserted >= 3
    second = await coordinator.poll_once()
    assert second.ok and second.stats is not None
    with rt.db.session() as session:
        ids = (
            session.execute(
                select(models.Mention.external_id).where(models.Mention.source_name == "feed-garbage")
            )
            .scalars()
            .all()
        )
    assert sorted(ids) == sorted(f"https://news.example/{n}" for n in range(1, 6))
    await rt.aclose()


async def test_auth_failure_disables_only_that_source(runtime: Runtime, script: Script) -> None:
    rt = runtime
    script.route("GET", "/2/tweets/search/recent", Steps(Reply.json({"title": "Unauthorized"}, 401)))
    script.route("GET", "/garbage.xml", Steps(_xml(_feed(range(1, 3)))))
    outcome = await rt.coordinators["x-broken"].poll_once()
    assert not outcome.ok and rt.coordinators["x-broken"].disabled == "auth"
    assert TOKEN not in (outcome.error or "")
    assert (await rt.coordinators["feed-garbage"].poll_once()).ok
    report = health_report(rt)
    sources: Any = report["sources"]
    assert report["status"] == "degraded" and "401" in sources["x-broken"]["disabled"]
    assert TOKEN not in repr(report)
    with rt.db.session() as session:
        ops = session.execute(select(models.Alert).where(models.Alert.kind == "ops")).scalars().all()
    assert len(ops) == 1 and ops[0].source == "x"
    await rt.aclose()


async def test_trickling_feed_fails_within_its_timeout_and_once_finishes(
    tmp_path: Path, script: Script
) -> None:
    """A feed that sends headers, then a byte now and then, fails after ``timeout`` as a transient
    failure with backoff, counted and logged; ``repmon once`` finishes and the healthy feeds flow."""
    healthy = [f"/news{i}.xml" for i in range(3)]
    for i, path in enumerate(healthy):
        script.route("GET", path, Steps(_xml(_feed(range(10 * i + 1, 10 * i + 3)))))
    async with drip_server(every=0.05) as slow:
        feeds = "".join(
            f"""
  - name: news{i}
    type: rss
    url: {script.base_url}{path}"""
            for i, path in enumerate(healthy)
        )
        text = f"""
storage:
  url: sqlite:///{tmp_path / "drip.db"}
  url_env: null
brands:
  - name: Acme Rail
    keywords: ["acme rail"]
sources:
  - name: trickle
    type: rss
    url: {slow}/feed.xml
    timeout: 0.3{feeds}
alerts:
  group_wait: 0s
  group_interval: 0s
daemon:
  health_port: null
"""
        rt = Runtime(
            load(text), notifier=CapturingNotifier(), classifier=StubClassifier(), clock=FakeClock(NOW)
        )
        upgrade(rt.db)
        try:
            started = time.monotonic()
            # The guard only keeps a regression from hanging the suite (it hung for good before).
            summary = await asyncio.wait_for(rt.run_once(), 20)
            assert time.monotonic() - started < 5
            assert summary.failed_sources == ["trickle"]
            assert summary.stored == 6 and summary.scored == 6
            [outcome] = [p for p in summary.polls if p.source == "trickle"]
            assert "timeout" in (outcome.error or "") and "0.3s" in (outcome.error or "")
            assert BASE_BACKOFF / 2 <= outcome.delay <= BASE_BACKOFF
            assert _errors(rt, "trickle", "transient") == 1
            health = _health(rt, "trickle")
            assert health.consecutive_failures == 1 and "timeout" in (health.last_error or "")
        finally:
            await rt.aclose()
