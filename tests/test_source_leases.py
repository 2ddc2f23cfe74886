"""Several daemons, one source: one poller at a time, and one schedule (backoff, Retry-After) for all."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import text

from config.settings import SourceSettings
from monitor import models
from monitor.clock import FakeClock
from monitor.coordinator import SourceCoordinator
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.migrate import upgrade
from monitor.watch import Watchlist
from sources.base import PollResult, RateLimitedError, TransientError
from tests.pipeline_util import T0, config_text, load
from tests.test_coordinator import ScriptedSource


def _daemons(
    url: str, tmp_path: Path, steps: list[object], owners: tuple[str, ...] = ("a", "b")
) -> tuple[list[SourceCoordinator], Database, ScriptedSource, FakeClock]:
    """Coordinators of one source in several 'daemons' (owners) sharing one database and one source."""
    config = load(config_text(url, tmp_path / "unused.jsonl"))
    db = Database(url)
    upgrade(db)
    source = ScriptedSource(steps)
    clock = FakeClock(T0)
    coordinators = [
        SourceCoordinator(
            source,
            SourceSettings(name="scripted", type="scripted", interval=30, jitter=0.0),
            db=db,
            settings=config.settings,
            watchlist=Watchlist(config.settings.brands),
            clock=clock,
            metrics=Metrics(),
            owner=owner,
            rng=random.Random(1),
            lease_ttl=10,
        )
        for owner in owners
    ]
    return coordinators, db, source, clock


def _health(db: Database) -> models.SourceHealth:
    with db.session() as session:
        row = session.get(models.SourceHealth, "scripted")
        assert row is not None
        return row


async def test_retry_after_holds_for_every_daemon(tmp_path: Path, db_url: str) -> None:
    (a, b), _db, source, clock = _daemons(
        db_url, tmp_path, [RateLimitedError("429", retry_after=120.0), PollResult([], {})]
    )
    first = await a.poll_once(on_schedule=True)
    assert not first.ok and first.delay == 120.0
    clock.advance(31)  # past the interval (and the old lease): still inside Retry-After
    for coordinator in (b, a):
        outcome = await coordinator.poll_once(on_schedule=True)
        assert outcome.not_due and 88 <= outcome.delay <= 90
    assert len(source.cursors) == 1
    clock.advance(90)
    outcomes = [await c.poll_once(on_schedule=True) for c in (b, a)]
    assert len(source.cursors) == 2  # exactly one poll once Retry-After is over
    assert sum(o.ok and not o.leased_elsewhere and not o.not_due for o in outcomes) == 1


async def test_backoff_keeps_doubling_when_another_daemon_takes_over(tmp_path: Path, db_url: str) -> None:
    steps: list[object] = [PollResult([], {}), *[TransientError("503")] * 4]
    (a, b), db, _source, clock = _daemons(db_url, tmp_path, steps)
    clock.advance((await b.poll_once(on_schedule=True)).delay)  # b knew the source when it was fine
    b.release_lease()
    for _ in range(3):
        outcome = await a.poll_once(on_schedule=True)
        clock.advance(outcome.delay)
    assert _health(db).consecutive_failures == 3
    a.release_lease()  # daemon a stops; b goes on with the same count
    outcome = await b.poll_once(on_schedule=True)
    assert not outcome.ok
    assert _health(db).consecutive_failures == 4
    assert 120 <= outcome.delay <= 240  # 30 s doubled three times, jittered down to half at most


async def test_a_lease_is_not_taken_because_a_heartbeat_is_missing(tmp_path: Path, pg_url: str) -> None:
    # After a database outage nobody's heartbeat is fresh: that must not hand a held source over.
    ok = PollResult([], {})
    (a, b), _db, source, clock = _daemons(pg_url, tmp_path, [ok, ok, ok])
    assert not (await a.poll_once()).leased_elsewhere
    clock.advance(60)  # longer than lease_ttl: no heartbeat at all
    assert (await b.poll_once()).leased_elsewhere
    assert len(source.cursors) == 1


async def test_a_lease_that_expired_during_an_outage_must_be_won_again(tmp_path: Path, pg_url: str) -> None:
    ok = PollResult([], {})
    (a, b), db, source, _clock = _daemons(pg_url, tmp_path, [ok, ok, ok])
    assert not (await a.poll_once()).leased_elsewhere
    with db.session() as session:  # a's lease ran out while the database was away
        session.execute(text("UPDATE source_health SET lease_until = now() - interval '1 second'"))
    assert not (await b.poll_once()).leased_elsewhere
    assert (await a.poll_once()).leased_elsewhere  # b won it meanwhile: a does not poll
    assert len(source.cursors) == 2
    assert _health(db).lease_owner == "b"
