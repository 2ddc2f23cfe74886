"""Source coordinator policy: backoff, server reset times, auth disables once, log-once on failure/recovery."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import select

from config.settings import SourceSettings
from monitor import models
from monitor.clock import FakeClock
from monitor.coordinator import POLL_DEADLINE_MIN, SourceCoordinator, poll_deadline
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.migrate import upgrade
from monitor.watch import Watchlist
from sources.base import AuthError, Cursor, Mention, PollResult, RateLimitedError, TransientError
from tests.pipeline_util import T0, config_text, load


class ScriptedSource:
    """Returns or raises what the test scripted, one step per poll."""

    kind: ClassVar[str] = "scripted"

    def __init__(self, steps: list[object]) -> None:
        self.name = "scripted"
        self.steps = steps
        self.cursors: list[Cursor] = []

    async def poll(self, cursor: Cursor) -> PollResult:
        self.cursors.append(dict(cursor))
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, PollResult)
        return step

    async def aclose(self) -> None:
        return None


def _coordinator(tmp_path: Path, steps: list[object]) -> tuple[SourceCoordinator, Database, ScriptedSource]:
    config = load(config_text(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "unused.jsonl"))
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db)
    source = ScriptedSource(steps)
    coordinator = SourceCoordinator(
        source,  # type: ignore[arg-type]
        SourceSettings(name="scripted", type="scripted", interval=300, jitter=0.1),
        db=db,
        settings=config.settings,
        watchlist=Watchlist(config.settings.brands),
        clock=FakeClock(T0),
        metrics=Metrics(),
        owner="me",
        rng=random.Random(1),
    )
    return coordinator, db, source


def _mention(n: int) -> Mention:
    return Mention(
        source="x", external_id=str(n), text=f"Acme Rail {n}", created_at=T0 + timedelta(minutes=n)
    )


async def test_rate_limit_waits_for_the_servers_reset(tmp_path: Path) -> None:
    coordinator, _db, _ = _coordinator(tmp_path, [RateLimitedError("429", retry_after=873.0)])
    outcome = await coordinator.poll_once()
    assert not outcome.ok and outcome.delay == 873.0
    assert coordinator.metrics.source_errors.labels("scripted", "rate_limited")._value.get() == 1


async def test_transient_errors_back_off_exponentially_with_cap(tmp_path: Path) -> None:
    coordinator, _, _ = _coordinator(tmp_path, [TransientError("503")] * 12)
    delays = [(await coordinator.poll_once()).delay for _ in range(12)]
    assert delays[0] < delays[3] < delays[6]
    assert max(delays) <= 3600
    assert all(d >= 15 for d in delays)


async def test_cursor_advances_only_with_stored_mentions(tmp_path: Path) -> None:
    steps: list[object] = [
        PollResult([_mention(1), _mention(2)], {"since_id": "2"}),
        TransientError("timeout"),
        PollResult([_mention(2), _mention(3)], {"since_id": "3"}),
    ]
    coordinator, db, source = _coordinator(tmp_path, steps)
    for _ in range(3):
        await coordinator.poll_once()
    assert source.cursors == [{}, {"since_id": "2"}, {"since_id": "2"}]
    with db.session() as session:
        ids = (
            session.execute(select(models.Mention.external_id).order_by(models.Mention.external_id))
            .scalars()
            .all()
        )
    assert ids == ["1", "2", "3"]


async def test_auth_failure_disables_and_raises_one_ops_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator, db, _ = _coordinator(tmp_path, [AuthError("HTTP 401: credentials refused")] * 3)
    await coordinator.run(asyncio.Event())  # returns because the source disables itself
    assert coordinator.disabled == "auth"
    with db.session() as session:
        alerts = session.execute(select(models.Alert)).scalars().all()
        health = session.get(models.SourceHealth, "scripted")
    assert len(alerts) == 1 and alerts[0].kind == "ops" and alerts[0].severity == "critical"
    assert alerts[0].title == "Source scripted stopped: credentials missing or refused"
    assert health is not None and health.disabled_reason and "401" in health.disabled_reason
    # A second failure on the same day (e.g. after a reload) does not add another ops alert.
    await coordinator.poll_once()
    with db.session() as session:
        assert len(session.execute(select(models.Alert)).scalars().all()) == 1


async def test_failure_logged_once_and_recovery_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    steps: list[object] = [TransientError("boom")] * 4 + [PollResult([_mention(1)], {})]
    coordinator, _, _ = _coordinator(tmp_path, steps)
    with caplog.at_level(logging.INFO, logger="repmon.sources"):
        for _ in range(5):
            await coordinator.poll_once()
    failing = [r for r in caplog.records if "is failing" in r.getMessage()]
    recovered = [r for r in caplog.records if "recovered after 4 failed polls" in r.getMessage()]
    assert len(failing) == 1 and len(recovered) == 1


class StuckSource(ScriptedSource):
    """A poll that never finishes (stuck somewhere no request timeout reaches)."""

    async def poll(self, cursor: Cursor) -> PollResult:
        self.cursors.append(dict(cursor))
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_stuck_poll_is_cut_off_as_a_transient_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator, db, _ = _coordinator(tmp_path, [])
    coordinator.source = StuckSource([])
    coordinator.poll_timeout = 0.2
    with caplog.at_level(logging.INFO, logger="repmon.sources"):
        # The guard only keeps a regression from hanging the suite.
        first = await asyncio.wait_for(coordinator.poll_once(), 10)
        second = await asyncio.wait_for(coordinator.poll_once(), 10)
    assert not first.ok and "cut off" in (first.error or "")
    assert 15 <= first.delay <= 30 < second.delay  # exponential backoff, as for any transient failure
    assert coordinator.metrics.source_errors.labels("scripted", "transient")._value.get() == 2
    with db.session() as session:
        health = session.get(models.SourceHealth, "scripted")
    assert health is not None and health.consecutive_failures == 2
    assert len([r for r in caplog.records if "is failing" in r.getMessage()]) == 1


def test_poll_deadline_follows_the_sources_timeout_and_pages() -> None:
    class Options:
        timeout = 30.0
        max_pages = 5

    class Paged:
        options = Options()

    class Feed:
        class options:  # stands in for an options instance
            timeout = 8.0

    assert poll_deadline(Paged()) == 30.0 * 11  # type: ignore[arg-type]
    assert poll_deadline(Feed()) == POLL_DEADLINE_MIN  # type: ignore[arg-type]
    assert poll_deadline(ScriptedSource([])) == POLL_DEADLINE_MIN


async def test_gone_stops_the_source_without_counting_as_a_success(tmp_path: Path) -> None:
    # 410 Gone ends the source: status and /metrics must not show it as freshly polled and up.
    coordinator, db, _ = _coordinator(
        tmp_path, [PollResult([_mention(1)], {"c": "1"}), PollResult([], {"c": "1"}, gone=True)]
    )
    await coordinator.poll_once()
    coordinator.clock.advance(600)  # type: ignore[attr-defined]
    await coordinator.poll_once()
    assert coordinator.disabled == "gone"
    with db.session() as session:
        health = session.get(models.SourceHealth, "scripted")
        assert health is not None
        assert health.last_success_at is not None and health.last_poll_at is not None
        assert health.last_success_at < health.last_poll_at, "a 410 counted as the last success"
        assert health.disabled_reason and "410" in health.disabled_reason
    assert coordinator.metrics.source_up.labels("scripted")._value.get() == 0


async def test_a_storage_outage_drops_the_up_gauge_and_the_lag_keeps_growing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    coordinator, db, _ = _coordinator(tmp_path, [PollResult([], {}), PollResult([], {})])
    assert (await coordinator.poll_once()).ok
    metrics = coordinator.metrics

    def refused() -> None:
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(db, "session", refused)
    assert isinstance(coordinator.clock, FakeClock)
    coordinator.clock.advance(600)
    outcome = await coordinator.poll_once()
    assert not outcome.ok and outcome.error and outcome.error.startswith("storage")
    assert metrics.source_up.labels("scripted")._value.get() == 0
    assert metrics.source_lag.labels("scripted")._value.get() == 600
    coordinator.holds_lease = False  # another daemon polls it: not this daemon's error to count
    await coordinator.poll_once()
    assert metrics.source_errors.labels("scripted", "storage")._value.get() == 1
