"""The digest scheduler inside the daemon: at each cron time (digest timezone, DST-safe) it builds the
digest of the period that just ended for every brand, writes the HTML report and posts to Slack.

Which brand's digest of which period is in Slack lives in the database (``digest_posts``): a daemon
claims a (period, brand) row before posting and marks it posted after, so several alert-role daemons
on one PostgreSQL post each digest once, and a restart never posts a period twice. A claim left by a
daemon that died while posting is taken over after :data:`CLAIM_TTL` (that one digest may then be
posted twice; nothing is lost). The HTML report is done when its file exists. A run missed while the
daemon was down is caught up if it is at most :data:`CATCH_UP` old. A failing run is logged and
retried a few times; it never takes the daemon down.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from alerts.digest import BrandDigest, Period, build_digests
from config.settings import Settings
from monitor import models
from monitor.clock import Clock
from monitor.coordinator import _sleep_or_stop
from monitor.db import Database

if TYPE_CHECKING:
    from alerts.digest_slack import PostedDigest

__all__ = [
    "CATCH_UP",
    "CLAIM_TTL",
    "DigestRuntime",
    "DigestScheduler",
    "digest_task",
    "next_run",
    "period_for_run",
    "previous_run",
]

log = logging.getLogger("repmon.digest")

#: A scheduled run missed while the daemon was down is still made when it is at most this old.
CATCH_UP = timedelta(hours=12)
#: Longest single sleep: schedule changes (config reload) and clock jumps are noticed this often.
MAX_SLEEP = 3600.0
#: Attempts per run, and the wait between them, before the period is given up until the next run.
MAX_ATTEMPTS = 3
RETRY_DELAY = 600.0
#: A digest claimed for posting but not marked posted after this long is taken over (its daemon died).
CLAIM_TTL = timedelta(minutes=15)


class DigestRuntime(Protocol):
    """What the scheduler needs from :class:`monitor.runtime.Runtime`."""

    @property
    def db(self) -> Database:
        """The database."""
        ...

    @property
    def settings(self) -> Settings:
        """The settings in force (they change on reload)."""
        ...

    @property
    def clock(self) -> Clock:
        """The injected clock."""
        ...


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous wall time (the repeated hour in autumn) means its first occurrence; a wall
    # time skipped in spring (02:30) resolves with the pre-jump offset, i.e. 03:30 summer time.
    return wall.replace(tzinfo=zone, fold=0)


def next_run(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time ``schedule`` fires strictly after ``after``, as aware UTC (cron read in ``timezone``)."""
    zone = ZoneInfo(timezone)
    wall = after.astimezone(zone).replace(tzinfo=None)
    # Iterate on naive wall-clock time (no DST arithmetic inside croniter), then attach the zone.
    try:
        it = croniter(schedule, wall - timedelta(hours=2))
        for _ in range(10_000):
            candidate = _localize(it.get_next(datetime), zone)
            if candidate > after:
                return candidate.astimezone(UTC)
    except CroniterError as exc:  # e.g. "0 9 31 2 *": no date matches
        raise ValueError(f"cron schedule {schedule!r} never fires: {exc}") from None
    raise ValueError(f"cron schedule {schedule!r} never fires")  # pragma: no cover - croniter validated it


def previous_run(schedule: str, timezone: str, before: datetime) -> datetime:
    """The last time ``schedule`` fired at or before ``before``, as aware UTC."""
    zone = ZoneInfo(timezone)
    wall = before.astimezone(zone).replace(tzinfo=None)
    try:
        it = croniter(schedule, wall + timedelta(hours=2, seconds=1))
        for _ in range(10_000):
            candidate = _localize(it.get_prev(datetime), zone)
            if candidate <= before:
                return candidate.astimezone(UTC)
    except CroniterError as exc:
        raise ValueError(f"cron schedule {schedule!r} never fired: {exc}") from None
    raise ValueError(f"cron schedule {schedule!r} never fires")  # pragma: no cover


def period_for_run(schedule: str, timezone: str, run_at: datetime) -> Period:
    """The period a run at ``run_at`` reports on: yesterday for daily schedules, the last full ISO week
    for schedules up to weekly, else the last full calendar month."""
    gap = next_run(schedule, timezone, run_at) - run_at
    today = run_at.astimezone(ZoneInfo(timezone)).date()
    if gap <= timedelta(days=1, hours=1):
        yesterday = today - timedelta(days=1)
        return Period.from_dates(yesterday, yesterday, timezone)
    if gap <= timedelta(days=7, hours=1):
        return Period.last_full_week(run_at, timezone)
    first_this_month = today.replace(day=1)
    last_month_end = first_this_month - timedelta(days=1)
    return Period.from_dates(last_month_end.replace(day=1), last_month_end, timezone)


class DigestScheduler:
    """Runs the digest on the configured cron schedule until the daemon stops."""

    def __init__(
        self,
        runtime: DigestRuntime,
        *,
        env: Mapping[str, str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.runtime = runtime
        self.env: Mapping[str, str] = env if env is not None else getattr(runtime, "env", os.environ)
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        #: Who claims digest posts: the daemon's id (leases and claims use the same).
        self.owner: str = getattr(runtime, "owner", None) or f"digest:{os.getpid()}:{id(self):x}"
        self.runs: list[tuple[datetime, Period, bool]] = []

    # -- scheduling ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sleep until each cron time and run the digest; returns when ``stop`` is set."""
        clock = self.runtime.clock
        await self._catch_up(stop)
        announced: tuple[str, str, bool] | None = None
        while not stop.is_set():
            cfg = self.runtime.settings.digest
            key = (cfg.schedule, cfg.timezone, cfg.enabled)
            if not cfg.enabled:
                if announced != key:
                    log.info("digest disabled in the configuration")
                    announced = key
                await _sleep_or_stop(clock, MAX_SLEEP, stop)
                continue
            try:
                due = next_run(cfg.schedule, cfg.timezone, clock.now())
            except Exception:  # a schedule that never fires must not end the task: wait for a reload
                if announced != key:
                    log.exception(
                        "digest schedule %r (%s) has no next run; no digest is sent until the "
                        "configuration is fixed and reloaded",
                        cfg.schedule,
                        cfg.timezone,
                    )
                    announced = key
                await _sleep_or_stop(clock, MAX_SLEEP, stop)
                continue
            if announced != key:
                log.info(
                    "next digest at %s (%s, %s)",
                    due.astimezone(ZoneInfo(cfg.timezone)),
                    cfg.schedule,
                    cfg.timezone,
                )
                announced = key
            while not stop.is_set() and clock.now() < due and self._schedule_key() == key:
                await _sleep_or_stop(clock, min((due - clock.now()).total_seconds(), MAX_SLEEP), stop)
            if stop.is_set():
                return
            if self._schedule_key() != key or clock.now() < due:
                continue  # the schedule changed while we slept
            await self.run_once(due, stop)

    def _schedule_key(self) -> tuple[str, str, bool]:
        cfg = self.runtime.settings.digest
        return cfg.schedule, cfg.timezone, cfg.enabled

    async def _catch_up(self, stop: asyncio.Event) -> None:
        cfg = self.runtime.settings.digest
        if not cfg.enabled:
            return
        now = self.runtime.clock.now()
        try:
            last = previous_run(cfg.schedule, cfg.timezone, now)
        except Exception:  # reported by run() too; nothing to catch up
            log.exception("digest schedule %r has no previous run; nothing to catch up", cfg.schedule)
            return
        if now - last <= CATCH_UP:
            # Idempotent: the HTML file and the digest_posts rows say what is still to do.
            await self.run_once(last, stop)

    # -- one run ---------------------------------------------------------------------------

    async def run_once(self, run_at: datetime, stop: asyncio.Event | None = None) -> bool:
        """Build and deliver the digest for the period ending before ``run_at``; never raises."""
        cfg = self.runtime.settings.digest
        try:
            period = period_for_run(cfg.schedule, cfg.timezone, run_at)
        except Exception:  # the schedule changed to one that never fires
            log.exception("digest run at %s skipped: schedule %r has no next run", run_at, cfg.schedule)
            return False
        stop = stop or asyncio.Event()
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.deliver(period)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed digest must never take the daemon down (logged, retried)
                log.exception(
                    "digest for %s failed (attempt %d of %d)", period.label, attempt, self.max_attempts
                )
                if attempt < self.max_attempts:
                    await _sleep_or_stop(self.runtime.clock, self.retry_delay, stop)
                    if stop.is_set():
                        break
            else:
                self.runs.append((run_at, period, True))
                return True
        self.runs.append((run_at, period, False))
        return False

    async def deliver(self, period: Period) -> list[BrandDigest]:
        """Write the HTML and post to Slack what has not been done for ``period`` yet."""
        settings = self.runtime.settings
        cfg = settings.digest
        html_dir = Path(cfg.html_dir) if cfg.html_dir else None
        token = self.env.get(settings.slack.token_env)
        names = [b.name for b in settings.brands if not b.competitor]
        html_due = html_dir is not None and not (html_dir / _html_name(period)).exists()
        posted = await asyncio.to_thread(self._posted, period) if token else set()
        slack_due = [n for n in names if n not in posted] if token else []
        if not html_due and not slack_due:
            log.info("digest for %s already delivered; nothing to do", period.label)
            return []
        digests = await asyncio.to_thread(build_digests, self.runtime.db, settings, period, names)
        if html_due and html_dir is not None:
            name = await asyncio.to_thread(_write_html, html_dir, period, digests)
            log.info("digest for %s written to %s", period.label, html_dir / name)
        if not token:
            log.info("digest for %s not posted: %s is not set", period.label, settings.slack.token_env)
            return digests
        from alerts.digest_slack import make_client, post_digest

        channel = cfg.channel or settings.slack.default_channel
        client = make_client(token, settings.slack.api_url)
        for digest in digests:
            if digest.brand not in slack_due:
                continue
            if not await asyncio.to_thread(self._claim, period, digest.brand):
                log.info("digest for %s, %s is being posted by another daemon", digest.brand, period.label)
                continue
            try:
                [sent] = await post_digest(client, channel, [digest])
            except BaseException:
                await asyncio.to_thread(self._release, period, digest.brand)
                raise
            await asyncio.to_thread(self._mark_posted, period, digest.brand, sent)
            log.info("digest for %s, %s posted to %s", digest.brand, period.label, channel)
        return digests

    # -- bookkeeping in the database -------------------------------------------------------

    def _posted(self, period: Period) -> set[str]:
        with self.runtime.db.session() as session:
            return set(
                session.execute(
                    select(models.DigestPost.brand).where(
                        models.DigestPost.period == period.slug, models.DigestPost.status == "posted"
                    )
                ).scalars()
            )

    def _claim(self, period: Period, brand: str) -> bool:
        """Take the right to post ``brand``'s digest for ``period``; False when done or taken."""
        db = self.runtime.db
        now = self.runtime.clock.now()
        try:
            with db.session() as session:
                stmt = select(models.DigestPost).where(
                    models.DigestPost.period == period.slug, models.DigestPost.brand == brand
                )
                row = session.execute(stmt.with_for_update() if db.is_postgres else stmt).scalar_one_or_none()
                if row is None:
                    session.add(
                        models.DigestPost(
                            period=period.slug,
                            brand=brand,
                            status="posting",
                            owner=self.owner,
                            started_at=now,
                        )
                    )
                    return True
                if row.status == "posted":
                    return False
                if row.owner != self.owner and row.started_at > now - CLAIM_TTL:
                    return False
                if row.owner != self.owner:
                    log.warning(
                        "digest for %s, %s was claimed by %s at %s and never finished; posting it now",
                        brand,
                        period.label,
                        row.owner,
                        row.started_at.isoformat(),
                    )
                row.owner = self.owner
                row.started_at = now
                return True
        except IntegrityError:
            return False  # another daemon inserted the claim first

    def _release(self, period: Period, brand: str) -> None:
        with self.runtime.db.session() as session:
            session.execute(
                delete(models.DigestPost).where(
                    models.DigestPost.period == period.slug,
                    models.DigestPost.brand == brand,
                    models.DigestPost.status == "posting",
                    models.DigestPost.owner == self.owner,
                )
            )

    def _mark_posted(self, period: Period, brand: str, sent: PostedDigest) -> None:
        with self.runtime.db.session() as session:
            row = session.get(models.DigestPost, (period.slug, brand))
            if row is None:  # the claim was deleted meanwhile (by hand): record the post anyway
                row = models.DigestPost(
                    period=period.slug, brand=brand, owner=self.owner, started_at=self.runtime.clock.now()
                )
                session.add(row)
            row.status = "posted"
            row.owner = self.owner
            row.posted_at = self.runtime.clock.now()
            row.channel = sent.channel
            row.ts = sent.ts
            row.file_id = sent.file_id


def _html_name(period: Period) -> str:
    return f"digest-{period.slug}.html"


def _write_html(html_dir: Path, period: Period, digests: list[BrandDigest]) -> str:
    from alerts.digest_html import render_html

    html_dir.mkdir(parents=True, exist_ok=True)
    name = _html_name(period)
    tmp = html_dir / f"{name}.{os.getpid()}.tmp"  # daemons sharing a volume never share a temp file
    tmp.write_text(render_html(digests, period), encoding="utf-8")
    tmp.replace(html_dir / name)
    return name


def digest_task(runtime: DigestRuntime) -> Callable[[asyncio.Event], Awaitable[None]]:
    """The daemon task: ``await digest_task(runtime)(stop)`` runs scheduled digests until ``stop``."""
    return DigestScheduler(runtime).run
