"""The digest scheduler: cron times in Europe/Amsterdam across DST, a fake clock, restarts, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from config.loader import parse_config
from config.settings import Settings
from monitor import models
from monitor.clock import FakeClock
from monitor.db import Database
from monitor.digest_schedule import DigestScheduler, digest_task, next_run, period_for_run, previous_run
from monitor.migrate import upgrade
from tests.mock_slack import BOT_TOKEN, MockSlack
from tests.test_digest import Seeder, local

AMS = "Europe/Amsterdam"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------------------------- cron times


def test_weekly_run_across_spring_forward() -> None:
    # Monday 25 March 09:00 CET → Monday 1 April 09:00 CEST: 167 hours later, still 09:00 local.
    after = local(date(2024, 3, 25), 9)
    assert after == utc(2024, 3, 25, 8)
    due = next_run("0 9 * * mon", AMS, after)
    assert due == utc(2024, 4, 1, 7)
    assert due - after == timedelta(hours=167)


def test_weekly_run_across_fall_back() -> None:
    due = next_run("0 9 * * mon", AMS, utc(2024, 10, 21, 7))
    assert due == utc(2024, 10, 28, 8)  # 09:00 CET


def test_skipped_wall_time_runs_after_the_jump_once() -> None:
    # 02:30 does not exist on 31 March 2024: it runs at 03:30 summer time (01:30 UTC), once.
    first = next_run("30 2 * * *", AMS, utc(2024, 3, 30, 12))
    assert first == utc(2024, 3, 31, 1, 30)
    assert next_run("30 2 * * *", AMS, first) == utc(2024, 4, 1, 0, 30)


def test_repeated_wall_time_runs_once() -> None:
    # 02:30 happens twice on 27 October 2024: only the first (summer time) one runs.
    first = next_run("30 2 * * *", AMS, utc(2024, 10, 26, 12))
    assert first == utc(2024, 10, 27, 0, 30)
    assert next_run("30 2 * * *", AMS, first) == utc(2024, 10, 28, 1, 30)


def test_previous_run_and_exact_boundaries() -> None:
    due = utc(2024, 4, 1, 7)
    assert previous_run("0 9 * * mon", AMS, due) == due
    assert previous_run("0 9 * * mon", AMS, due - timedelta(seconds=1)) == utc(2024, 3, 25, 8)
    assert next_run("0 9 * * mon", AMS, due) == utc(2024, 4, 8, 7)  # strictly after


def test_period_follows_the_schedule() -> None:
    weekly = period_for_run("0 9 * * mon", AMS, utc(2024, 4, 1, 7))
    assert weekly.slug == "2024-W13" and weekly.end - weekly.start == timedelta(hours=167)
    daily = period_for_run("0 7 * * *", AMS, utc(2024, 3, 31, 5))
    assert daily.slug == "2024-03-30_2024-03-30"
    monthly = period_for_run("0 9 1 * *", AMS, utc(2024, 4, 1, 7))
    assert (monthly.local_start.date(), monthly.last_day) == (date(2024, 3, 1), date(2024, 3, 31))


# ---------------------------------------------------------------------------------- the daemon task


class StoppingClock(FakeClock):
    """A fake clock that sets ``stop`` instead of moving past ``limit`` (ends the task deterministically)."""

    def __init__(self, start: datetime, limit: datetime) -> None:
        super().__init__(start)
        self.limit = limit
        self.stop = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if self.now() + timedelta(seconds=seconds) > self.limit:
            self.stop.set()
            await asyncio.sleep(0)
            return
        await super().sleep(seconds)


@dataclass
class FakeRuntime:
    """What the scheduler reads from the daemon's Runtime."""

    db: Database
    settings: Settings
    clock: FakeClock
    env: dict[str, str] = field(default_factory=dict)
    owner: str = "test-daemon"


def settings_for(
    html_dir: Path | None, api_url: str = "http://127.0.0.1:9/api/", *, extra_brand: str | None = None
) -> Settings:
    html = f"html_dir: {html_dir}" if html_dir else "html_dir: null"
    extra = f"  - name: {extra_brand}\n    keywords: [{extra_brand.lower()}]\n" if extra_brand else ""
    return parse_config(
        f"""
brands:
  - name: Acme
    keywords: [acme]
    compare_with: [Rival]
  - name: Rival
    keywords: [rival]
    competitor: true
{extra}slack:
  api_url: {api_url}
digest:
  schedule: "0 9 * * mon"
  timezone: Europe/Amsterdam
  channel: "#webcare"
  {html}
"""
    ).settings


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return seeded(f"sqlite:///{tmp_path / 'repmon.db'}")


def seeded(url: str) -> Database:
    database = Database(url)
    upgrade(database)
    s = Seeder(database)
    for day in range(25, 32):  # the week of the DST change
        s.mention(
            "Acme",
            local(date(2024, 3, day), 12),
            "acme train delayed again",
            sentiment="negative",
            complaint=0.9,
        )
    s.mention("Rival", local(date(2024, 3, 27), 12), "rival is ok", sentiment="positive")
    return database


@pytest.fixture
async def slack() -> AsyncIterator[MockSlack]:
    async with MockSlack() as server:
        yield server


async def test_task_sleeps_until_the_cron_time_then_writes_and_posts(
    db: Database, tmp_path: Path, slack: MockSlack
) -> None:
    start = utc(2024, 3, 31, 12)  # Sunday noon; next run Monday 1 April 09:00 CEST
    clock = StoppingClock(start, limit=utc(2024, 4, 1, 9))
    runtime = FakeRuntime(
        db, settings_for(tmp_path / "digests", slack.api_url), clock, {"SLACK_BOT_TOKEN": BOT_TOKEN}
    )
    scheduler = DigestScheduler(runtime)
    await asyncio.wait_for(scheduler.run(clock.stop), 60)

    assert [(run_at, p.slug, ok) for run_at, p, ok in scheduler.runs] == [
        (utc(2024, 4, 1, 7), "2024-W13", True)
    ]
    assert sum(clock.slept[:19]) == pytest.approx(19 * 3600)  # up to the run, in chunks of at most an hour
    assert max(clock.slept) <= 3600
    html = (tmp_path / "digests" / "digest-2024-W13.html").read_text(encoding="utf-8")
    assert "Week 13, 2024 (25 Mar – 31 Mar)" in html and "Rival" in html
    [root] = slack.roots("#webcare")  # one message: Acme only (Rival is a competitor)
    assert "Digest for Acme, Week 13, 2024" in root["text"] and "7 mentions" in root["text"]
    assert len(slack.uploads) == 1 and slack.uploads[0]["thread_ts"] == root["ts"]
    with db.session() as session:
        row = session.get(models.DigestPost, ("2024-W13", "Acme"))
        assert row is not None and row.status == "posted" and row.ts == root["ts"]


async def test_digest_task_is_the_daemon_entry_point(db: Database, tmp_path: Path) -> None:
    clock = StoppingClock(utc(2024, 4, 1, 6, 30), limit=utc(2024, 4, 1, 8))
    runtime = FakeRuntime(db, settings_for(tmp_path / "d"), clock)
    task = digest_task(runtime)
    await asyncio.wait_for(task(clock.stop), 60)
    assert (tmp_path / "d" / "digest-2024-W13.html").exists()  # written without Slack credentials


async def test_restart_never_posts_the_same_period_twice(
    db: Database, tmp_path: Path, slack: MockSlack
) -> None:
    settings = settings_for(tmp_path / "digests", slack.api_url)
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN}
    first = DigestScheduler(FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7)), env))
    assert await first.run_once(utc(2024, 4, 1, 7))
    html = tmp_path / "digests" / "digest-2024-W13.html"
    written = html.stat().st_mtime_ns
    # The daemon restarts at 09:30 local: the missed-run catch-up finds the period already delivered.
    clock = StoppingClock(utc(2024, 4, 1, 7, 30), limit=utc(2024, 4, 1, 8))
    second = DigestScheduler(FakeRuntime(db, settings, clock, env))
    await asyncio.wait_for(second.run(clock.stop), 60)
    assert [p.slug for _, p, _ in second.runs] == ["2024-W13"]
    assert len(slack.roots("#webcare")) == 1 and len(slack.uploads) == 1
    assert html.stat().st_mtime_ns == written


async def test_missed_run_is_caught_up_after_a_restart(
    db: Database, tmp_path: Path, slack: MockSlack
) -> None:
    clock = StoppingClock(utc(2024, 4, 1, 10), limit=utc(2024, 4, 1, 10, 30))  # down at 09:00, back at 12:00
    runtime = FakeRuntime(
        db, settings_for(tmp_path / "digests", slack.api_url), clock, {"SLACK_BOT_TOKEN": BOT_TOKEN}
    )
    scheduler = DigestScheduler(runtime)
    await asyncio.wait_for(scheduler.run(clock.stop), 60)
    assert [(run_at, ok) for run_at, _, ok in scheduler.runs] == [(utc(2024, 4, 1, 7), True)]
    assert len(slack.roots("#webcare")) == 1


async def test_failed_post_is_retried(db: Database, tmp_path: Path, slack: MockSlack) -> None:
    settings = settings_for(tmp_path / "digests", slack.api_url)
    runtime = FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7)), {"SLACK_BOT_TOKEN": BOT_TOKEN})
    slack.fail_next("chat.postMessage", "channel_not_found")
    scheduler = DigestScheduler(runtime, max_attempts=2, retry_delay=60)
    assert await scheduler.run_once(utc(2024, 4, 1, 7))  # the second attempt succeeds
    assert runtime.clock.slept == [60]
    assert len(slack.roots("#webcare")) == 1
    assert (tmp_path / "digests" / "digest-2024-W13.html").exists()


async def test_only_brands_not_yet_posted_are_posted(db: Database, tmp_path: Path, slack: MockSlack) -> None:
    # A run that died after posting Acme: the database says so; the next run posts Beta only.
    settings = settings_for(tmp_path / "digests", slack.api_url, extra_brand="Beta")
    with db.session() as session:
        session.add(
            models.DigestPost(
                period="2024-W13",
                brand="Acme",
                status="posted",
                owner="old-daemon",
                started_at=utc(2024, 4, 1, 7),
                ts="1.0",
            )
        )
    runtime = FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7)), {"SLACK_BOT_TOKEN": BOT_TOKEN})
    assert await DigestScheduler(runtime).run_once(utc(2024, 4, 1, 7))
    [root] = slack.roots("#webcare")
    assert "Digest for Beta" in root["text"]
    assert (tmp_path / "digests" / "digest-2024-W13.html").exists()


async def test_several_daemons_post_each_digest_once(db_url: str, slack: MockSlack) -> None:
    # Three alert-role daemons on one database hit the same cron time together.
    db = seeded(db_url)
    settings = settings_for(None, slack.api_url, extra_brand="Beta")
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN}
    schedulers = [
        DigestScheduler(FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7)), env, owner=f"d{i}"))
        for i in range(3)
    ]
    results = await asyncio.gather(*(s.run_once(utc(2024, 4, 1, 7)) for s in schedulers))
    assert results == [True, True, True]
    roots = slack.roots("#webcare")
    assert sorted(r["text"].split(",")[0] for r in roots) == ["Digest for Acme", "Digest for Beta"]


async def test_a_claim_left_by_a_dead_daemon_is_taken_over(
    db: Database, tmp_path: Path, slack: MockSlack
) -> None:
    settings = settings_for(None, slack.api_url)
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN}
    with db.session() as session:
        session.add(
            models.DigestPost(
                period="2024-W13", brand="Acme", status="posting", owner="dead", started_at=utc(2024, 4, 1, 7)
            )
        )
    # Within the claim's lifetime another daemon leaves it alone (the owner may still be posting) ...
    early = DigestScheduler(FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7, 5)), env, owner="d1"))
    assert await early.run_once(utc(2024, 4, 1, 7))
    assert slack.roots("#webcare") == []
    # ... after it, the digest is posted, once.
    late = DigestScheduler(FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7, 20)), env, owner="d1"))
    assert await late.run_once(utc(2024, 4, 1, 7))
    assert await late.run_once(utc(2024, 4, 1, 7))
    assert len(slack.roots("#webcare")) == 1


async def test_a_broken_database_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Database(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no tables: every query fails
    clock = StoppingClock(utc(2024, 4, 1, 6, 30), limit=utc(2024, 4, 1, 9))
    runtime = FakeRuntime(broken, settings_for(tmp_path / "d"), clock)
    scheduler = DigestScheduler(runtime, max_attempts=2, retry_delay=300)
    await asyncio.wait_for(scheduler.run(clock.stop), 60)  # returns normally
    assert [(run_at, ok) for run_at, _, ok in scheduler.runs] == [(utc(2024, 4, 1, 7), False)]
    assert "digest for Week 13, 2024" in caplog.text and "attempt 2 of 2" in caplog.text
    assert not (tmp_path / "d" / "digest-2024-W13.html").exists()


async def test_without_html_dir_the_same_process_does_not_repeat(db: Database, slack: MockSlack) -> None:
    runtime = FakeRuntime(
        db, settings_for(None, slack.api_url), FakeClock(utc(2024, 4, 1, 7)), {"SLACK_BOT_TOKEN": BOT_TOKEN}
    )
    scheduler = DigestScheduler(runtime)
    assert await scheduler.run_once(utc(2024, 4, 1, 7))
    assert await scheduler.run_once(utc(2024, 4, 1, 7))
    assert len(slack.roots("#webcare")) == 1


async def test_disabled_digest_never_runs(db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "d")
    settings = settings.model_copy(update={"digest": settings.digest.model_copy(update={"enabled": False})})
    clock = StoppingClock(utc(2024, 3, 31, 12), limit=utc(2024, 4, 9))
    scheduler = DigestScheduler(FakeRuntime(db, settings, clock))
    await asyncio.wait_for(scheduler.run(clock.stop), 60)
    assert scheduler.runs == [] and not (tmp_path / "d").exists()
    assert clock.now() > utc(2024, 4, 8, 7)  # it did wait through two cron times


# ------------------------------------------------------------------------ schedules that never fire


def _with_schedule(settings: Settings, schedule: str) -> Settings:
    """``settings`` with another digest schedule, unvalidated (as a stale or hand-made Settings could be)."""
    digest = settings.digest.model_copy(update={"schedule": schedule})
    return settings.model_copy(update={"digest": digest})


def test_next_and_previous_run_of_a_schedule_that_never_fires_raise_value_error() -> None:
    with pytest.raises(ValueError, match="never fire"):
        next_run("0 9 31 2 *", AMS, utc(2024, 4, 1))
    with pytest.raises(ValueError, match="never fire"):
        previous_run("0 9 31 2 *", AMS, utc(2024, 4, 1))


class ReloadingClock(StoppingClock):
    """A stopping clock that swaps the runtime's settings (a config reload) once ``reload_at`` passes."""

    def __init__(self, start: datetime, limit: datetime, reload_at: datetime) -> None:
        super().__init__(start, limit)
        self.reload_at = reload_at
        self.runtime: FakeRuntime | None = None
        self.reloaded: Settings | None = None

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if self.runtime is not None and self.reloaded is not None and self.now() >= self.reload_at:
            self.runtime.settings, self.reloaded = self.reloaded, None


async def test_a_schedule_that_never_fires_is_logged_and_the_task_waits_for_a_reload(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = settings_for(tmp_path / "d")
    # 10:00 UTC on Monday 1 April: within the catch-up window of the 09:00 local run, had it a valid one.
    clock = ReloadingClock(utc(2024, 4, 1, 10), limit=utc(2024, 4, 8, 9), reload_at=utc(2024, 4, 3))
    runtime = FakeRuntime(db, _with_schedule(good, "0 9 31 2 *"), clock)
    clock.runtime, clock.reloaded = runtime, good
    scheduler = DigestScheduler(runtime)
    await asyncio.wait_for(scheduler.run(clock.stop), 60)  # neither the catch-up nor the loop raises

    assert "'0 9 31 2 *'" in caplog.text and "has no next run" in caplog.text
    assert caplog.text.count("has no next run; no digest is sent") == 1  # logged once, not every hour
    # After the reload to a valid schedule the next Monday's digest runs as usual.
    assert [(run_at, p.slug, ok) for run_at, p, ok in scheduler.runs] == [
        (utc(2024, 4, 8, 7), "2024-W14", True)
    ]
    assert (tmp_path / "d" / "digest-2024-W14.html").exists()


async def test_run_once_with_a_schedule_that_never_fires_returns_false(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _with_schedule(settings_for(tmp_path / "d"), "0 9 31 2 *")
    scheduler = DigestScheduler(FakeRuntime(db, settings, FakeClock(utc(2024, 4, 1, 7))))
    assert await scheduler.run_once(utc(2024, 4, 1, 7)) is False
    assert "skipped" in caplog.text and not (tmp_path / "d").exists()
