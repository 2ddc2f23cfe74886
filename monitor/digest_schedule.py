"""The digest scheduler inside the daemon: at each cron time (digest timezone, DST-safe) it builds the
digest of the period that just ended for every brand, writes the HTML report and posts to Slack.

Progress is remembered per period in ``<html_dir>/digest-<period>.state.json`` (which brands were
posted, to which message), so a restart never posts the same period twice, and a run missed while
the daemon was down is caught up if it is at most :data:`CATCH_UP` old. Without ``html_dir`` there is
nowhere to remember, so the scheduler then neither catches up nor guards against a restart.
A failing run is logged and retried a few times; it never takes the daemon down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from alerts.digest import BrandDigest, Period, build_digests
from config.settings import Settings
from monitor.clock import Clock
from monitor.coordinator import _sleep_or_stop
from monitor.db import Database

__all__ = [
    "CATCH_UP",
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
    it = croniter(schedule, wall - timedelta(hours=2))
    for _ in range(10_000):
        candidate = _localize(it.get_next(datetime), zone)
        if candidate > after:
            return candidate.astimezone(UTC)
    raise ValueError(f"cron schedule {schedule!r} never fires")  # pragma: no cover - croniter validated it


def previous_run(schedule: str, timezone: str, before: datetime) -> datetime:
    """The last time ``schedule`` fired at or before ``before``, as aware UTC."""
    zone = ZoneInfo(timezone)
    wall = before.astimezone(zone).replace(tzinfo=None)
    it = croniter(schedule, wall + timedelta(hours=2, seconds=1))
    for _ in range(10_000):
        candidate = _localize(it.get_prev(datetime), zone)
        if candidate <= before:
            return candidate.astimezone(UTC)
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


@dataclass
class _State:
    """What was already done for one period (persisted as JSON next to the HTML)."""

    path: Path | None
    html: str | None = None
    slack: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> _State:
        if path is None or not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("digest state %s unreadable (%s); starting that period afresh", path, exc)
            return cls(path)
        return cls(path, data.get("html"), dict(data.get("slack") or {}))

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"html": self.html, "slack": self.slack}, indent=2), encoding="utf-8")
        tmp.replace(self.path)


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
        #: Per-process memory of finished periods, for when there is no html_dir to remember in.
        self._memory: dict[str, _State] = {}
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
            due = next_run(cfg.schedule, cfg.timezone, clock.now())
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
        if not cfg.enabled or not cfg.html_dir:
            return
        now = self.runtime.clock.now()
        last = previous_run(cfg.schedule, cfg.timezone, now)
        if now - last <= CATCH_UP:
            # Idempotent: the period's state file says what (if anything) is still to do.
            await self.run_once(last, stop)

    # -- one run ---------------------------------------------------------------------------

    async def run_once(self, run_at: datetime, stop: asyncio.Event | None = None) -> bool:
        """Build and deliver the digest for the period ending before ``run_at``; never raises."""
        cfg = self.runtime.settings.digest
        period = period_for_run(cfg.schedule, cfg.timezone, run_at)
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
        state = self._state(period, html_dir)
        token = self.env.get(settings.slack.token_env)
        names = [b.name for b in settings.brands if not b.competitor]
        html_due = html_dir is not None and not (state.html and (html_dir / state.html).exists())
        slack_due = [n for n in names if n not in state.slack] if token else []
        if not html_due and not slack_due:
            log.info("digest for %s already delivered; nothing to do", period.label)
            return []
        digests = await asyncio.to_thread(build_digests, self.runtime.db, settings, period, names)
        if html_due and html_dir is not None:
            state.html = await asyncio.to_thread(_write_html, html_dir, period, digests)
            state.save()
            log.info("digest for %s written to %s", period.label, html_dir / state.html)
        if not token:
            log.info("digest for %s not posted: %s is not set", period.label, settings.slack.token_env)
            return digests
        from alerts.digest_slack import make_client, post_digest

        channel = cfg.channel or settings.slack.default_channel
        client = make_client(token, settings.slack.api_url)
        for digest in digests:
            if digest.brand not in slack_due:
                continue
            [posted] = await post_digest(client, channel, [digest])
            state.slack[digest.brand] = {"channel": posted.channel, "ts": posted.ts, "file": posted.file_id}
            state.save()
            log.info("digest for %s, %s posted to %s", digest.brand, period.label, channel)
        return digests

    def _state(self, period: Period, html_dir: Path | None) -> _State:
        if html_dir is None:
            return self._memory.setdefault(period.slug, _State(None))
        return _State.load(html_dir / f"digest-{period.slug}.state.json")


def _write_html(html_dir: Path, period: Period, digests: list[BrandDigest]) -> str:
    from alerts.digest_html import render_html

    html_dir.mkdir(parents=True, exist_ok=True)
    name = f"digest-{period.slug}.html"
    tmp = html_dir / (name + ".tmp")
    tmp.write_text(render_html(digests, period), encoding="utf-8")
    tmp.replace(html_dir / name)
    return name


def digest_task(runtime: DigestRuntime) -> Callable[[asyncio.Event], Awaitable[None]]:
    """The daemon task: ``await digest_task(runtime)(stop)`` runs scheduled digests until ``stop``."""
    return DigestScheduler(runtime).run
