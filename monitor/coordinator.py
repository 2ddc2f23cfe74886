"""The source coordinator: owns a source's schedule, backoff, health, lease and persistence.

Home Assistant's DataUpdateCoordinator, adapted: interval with jitter; exponential backoff with
jitter on transient errors; the server's own reset time on rate limits; auth failures disable the
source and raise one ops alert; a failure is logged once when it starts and once on recovery.
A poll that does not finish within :func:`poll_deadline` is cut off as a transient failure.
A :class:`PollLimiter` shared by a daemon's coordinators bounds how many sources poll at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config.settings import Settings, SourceSettings
from monitor import models
from monitor.clock import Clock
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.outbox import enqueue
from monitor.store import StoreStats, load_cursor, store_poll
from monitor.watch import Watchlist
from sources.base import (
    AuthError,
    Cursor,
    NotConfiguredError,
    PollResult,
    RateLimitedError,
    Source,
    SourceError,
    TransientError,
)

__all__ = ["PollLimiter", "PollOutcome", "SourceCoordinator", "poll_deadline"]

log = logging.getLogger("repmon.sources")

#: First retry delay after a transient failure; doubles per consecutive failure up to max_backoff.
BASE_BACKOFF = 30.0
#: Delay before fetching the next page when a source says more is waiting.
MORE_DELAY = 0.2
#: Shortest time a whole poll may take before it is cut off (see :func:`poll_deadline`).
POLL_DEADLINE_MIN = 120.0


def poll_deadline(source: Source) -> float:
    """Seconds one poll of ``source`` may take in all before it is cut off as a transient failure.

    Each request is bounded by the source's ``timeout``; a poll makes several (pages, streams, a
    token), so it gets twice its page budget plus one in request timeouts, and at least
    :data:`POLL_DEADLINE_MIN`. This is a safety net: it keeps one stuck source from holding its
    schedule, a poll slot and ``repmon once`` forever, whatever it is stuck on.
    """
    options = getattr(source, "options", None)
    timeout = getattr(options, "timeout", None)
    pages = getattr(options, "max_pages", None)
    if not isinstance(timeout, int | float) or timeout <= 0:
        return POLL_DEADLINE_MIN
    requests = 2 * (pages if isinstance(pages, int) and pages > 0 else 1) + 1
    return max(POLL_DEADLINE_MIN, float(timeout) * requests)


@dataclass(slots=True)
class PollOutcome:
    """What one poll did, for ``repmon once`` summaries and tests."""

    source: str
    ok: bool
    stats: StoreStats | None = None
    error: str | None = None
    delay: float = 0.0
    more: bool = False
    skipped: int = 0
    leased_elsewhere: bool = False
    #: The source's stored schedule (backoff, Retry-After) says not yet: nothing was fetched.
    not_due: bool = False


class PollLimiter:
    """Bounds how many sources poll at the same time; one per daemon, shared by its coordinators.

    A poll makes its HTTP requests one after another, so this also bounds the daemon's concurrent
    requests: hundreds of feeds on one host never all fetch at once. ``None`` means no bound.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the slots for the duration of a poll (waiting for one when all are taken)."""
        if self.limit is None:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            # A semaphore belongs to one event loop (tests run a fresh loop each).
            self._semaphore, self._loop = asyncio.Semaphore(self.limit), loop
        async with self._semaphore:
            yield


class SourceCoordinator:
    """Schedules and polls one source, persisting its mentions, cursor and health."""

    def __init__(
        self,
        source: Source,
        source_settings: SourceSettings,
        *,
        db: Database,
        settings: Settings,
        watchlist: Watchlist,
        clock: Clock,
        metrics: Metrics,
        owner: str,
        rng: random.Random | None = None,
        lease_ttl: float = 60.0,
        max_backoff: float = 3600.0,
        limiter: PollLimiter | None = None,
        poll_timeout: float | None = None,
    ) -> None:
        self.source = source
        self.name = source_settings.name
        self.config = source_settings
        self.db = db
        self.settings = settings
        self.watchlist = watchlist
        self.clock = clock
        self.metrics = metrics
        self.owner = owner
        self.rng = rng or random.Random()
        self.lease_ttl = lease_ttl
        self.max_backoff = max_backoff
        self.limiter = limiter or PollLimiter(None)
        #: Seconds a whole poll may take (requests are bounded one by one by the source itself).
        self.poll_timeout = poll_timeout if poll_timeout is not None else poll_deadline(source)
        self.failures = 0
        self.disabled: str | None = None
        self.next_poll_at: datetime | None = None
        #: The last successful poll as last read or written (for the lag gauge during an outage).
        self.last_success_at: datetime | None = None
        #: Whether this daemon held the lease at its last attempt (None: not known yet).
        self.holds_lease: bool | None = None
        self._health_ready = False
        self._storage_failing = False

    def _ensure_health_row(self) -> None:
        if self._health_ready:
            return
        with self.db.session() as session:
            row = session.get(models.SourceHealth, self.name)
            if row is None:
                session.add(models.SourceHealth(source_name=self.name, kind=self.source.kind))
            else:
                self.failures = row.consecutive_failures
                # A source disabled for bad credentials stays off until the configuration is reloaded
                # (new credentials); a restart re-tries once so fixed env vars are picked up.
                row.disabled_reason = None
        self._health_ready = True  # only once the row is committed (the database may be down)

    def retry_after_reload(self) -> bool:
        """Poll again a source disabled for its credentials or settings: a reload may have fixed them.

        True when it was disabled. Its next poll clears ``disabled_reason`` in the health row; a
        source that answered 410 Gone stays off until its own configuration changes.
        """
        if self.disabled not in ("auth", "not_configured"):
            return False
        self.disabled = None
        self._health_ready = False
        return True

    # -- scheduling ------------------------------------------------------------------------

    def interval_delay(self) -> float:
        """The regular interval with jitter (± jitter share)."""
        interval = self.config.interval
        spread = interval * self.config.jitter
        return max(1.0, interval + self.rng.uniform(-spread, spread))

    def backoff_delay(self) -> float:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self.max_backoff, BASE_BACKOFF * 2 ** max(0, self.failures - 1))
        return self.rng.uniform(ceiling / 2, ceiling)

    def start_delay(self, spread: float) -> float:
        """A random wait before the first poll, up to ``spread`` and never longer than the interval."""
        return self.rng.uniform(0, min(spread, self.config.interval)) if spread > 0 else 0.0

    async def run(
        self,
        stop: asyncio.Event,
        on_stored: Callable[[], None] | None = None,
        *,
        start_spread: float = 0.0,
    ) -> None:
        """Poll on schedule until ``stop`` is set or the source is disabled.

        ``on_stored`` is called after a poll stored new mentions (the daemon wakes its processing
        loop with it, so new mentions are scored and alerted on without waiting for the next tick).
        ``start_spread`` delays the first poll by a random time up to that many seconds, so sources
        started together do not all poll at the same moment.
        """
        delay = self.start_delay(start_spread)
        if delay > 0:
            await _sleep_or_stop(self.clock, delay, stop)
        while not stop.is_set() and self.disabled is None:
            outcome = await self.poll_once(on_schedule=True)
            if on_stored is not None and outcome.stats is not None and outcome.stats.inserted:
                on_stored()
            if self.disabled is not None:
                break
            await _sleep_or_stop(self.clock, outcome.delay, stop)

    # -- polling ---------------------------------------------------------------------------

    def _acquire_lease(self) -> bool:
        """Take or renew this source's lease; False while another daemon's lease runs.

        The expiry is decided by the database clock and the lease is taken with one conditional
        UPDATE, so two daemons never both win it, and a daemon whose lease ran out (during a
        database outage, say) gets it back only if nobody took it meanwhile. It is held for a whole
        poll here and, once the poll is recorded, until the next poll is due (plus ``lease_ttl``),
        so a daemon that dies loses its sources at most ``lease_ttl`` after their next poll was due.
        Heartbeats play no part: they cannot be written during an outage either.

        On SQLite there is only ever one daemon: no lease.
        """
        if not self.db.is_postgres:
            return True
        with self.db.session() as session:
            result = session.execute(
                update(models.SourceHealth)
                .where(
                    models.SourceHealth.source_name == self.name,
                    or_(
                        models.SourceHealth.lease_owner.is_(None),
                        models.SourceHealth.lease_owner == self.owner,
                        models.SourceHealth.lease_until.is_(None),
                        models.SourceHealth.lease_until < func.now(),
                    ),
                )
                .values(
                    lease_owner=self.owner,
                    lease_until=func.now() + timedelta(seconds=self.poll_timeout + self.lease_ttl),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _hold_lease(self, session: Session, wait: float) -> None:
        """Keep the lease until the next poll is due plus ``lease_ttl`` (no-op on SQLite)."""
        if not self.db.is_postgres:
            return
        session.execute(
            update(models.SourceHealth)
            .where(
                models.SourceHealth.source_name == self.name,
                models.SourceHealth.lease_owner == self.owner,
            )
            .values(lease_until=func.now() + timedelta(seconds=wait + self.lease_ttl))
        )

    def release_lease(self) -> None:
        """Give the lease up (clean shutdown) so another daemon can take over at once."""
        with self.db.session() as session:
            session.execute(
                update(models.SourceHealth)
                .where(
                    models.SourceHealth.source_name == self.name,
                    models.SourceHealth.lease_owner == self.owner,
                )
                .values(lease_owner=None, lease_until=None)
            )

    def _prepare(self, now: datetime, on_schedule: bool) -> Cursor | PollOutcome:
        """Health row, stored schedule, lease and stored cursor; an outcome when not polling now.

        The schedule and the failure count live in the health row, so whichever daemon polls next
        honours the backoff or the server's Retry-After that another daemon recorded.
        """
        self._ensure_health_row()
        with self.db.session() as session:
            health = session.get(models.SourceHealth, self.name)
            assert health is not None
            self.failures = health.consecutive_failures or 0
            self.last_success_at = health.last_success_at
            due = health.next_poll_at
        self.next_poll_at = due
        if on_schedule and due is not None and due > now:
            return PollOutcome(self.name, ok=True, delay=(due - now).total_seconds(), not_due=True)
        self.holds_lease = self._acquire_lease()
        if not self.holds_lease:
            return PollOutcome(
                self.name, ok=True, delay=min(self.lease_ttl, self.interval_delay()), leased_elsewhere=True
            )
        with self.db.session() as session:
            return load_cursor(session, self.name)

    async def poll_once(self, *, on_schedule: bool = False) -> PollOutcome:
        """Poll once, store what came back with the new cursor, update health; never raises.

        With ``on_schedule`` (the daemon) a source whose stored ``next_poll_at`` has not come yet is
        not polled (``not_due``); ``repmon once`` polls at once. It first waits for a slot of the
        shared :class:`PollLimiter`. Database work runs in a worker
        thread so the event loop keeps serving other sources. When the database fails (unreachable,
        locked, full) nothing of the poll is kept and the cursor stays, so the same items are
        fetched again on the next try.
        """
        try:
            async with self.limiter.slot():
                outcome = await self._poll(self.clock.now(), on_schedule)
        except SQLAlchemyError as exc:
            return self._storage_failed(exc)
        if self._storage_failing:
            self._storage_failing = False
            log.info("source %s: the database accepts its polls again", self.name)
        return outcome

    def _storage_failed(self, exc: SQLAlchemyError) -> PollOutcome:
        """Count a poll the database refused and retry at the regular interval (not the source's fault).

        Counted by the daemon that polls the source (or may: not known yet), not by every daemon that
        merely looks at it; the up gauge drops to 0 and the lag gauge keeps growing from memory.
        """
        if self.holds_lease is not False:
            self.metrics.polls.labels(self.name, "error").inc()
            self.metrics.source_errors.labels(self.name, "storage").inc()
            self.metrics.source_up.labels(self.name).set(0)  # it is not being polled
            if self.last_success_at is not None:
                lag = (self.clock.now() - self.last_success_at).total_seconds()
                self.metrics.source_lag.labels(self.name).set(lag)
        problem: BaseException = getattr(exc, "orig", None) or exc
        detail = f"{type(problem).__name__}: {str(problem).strip().splitlines()[0] if str(problem).strip() else ''}"
        wait = self.interval_delay()
        if not self._storage_failing:
            self._storage_failing = True
            log.error(
                "source %s: the database refused this poll (%s); nothing stored, cursor unchanged; "
                "retrying every %.0fs",
                self.name,
                detail[:300],
                wait,
            )
        return PollOutcome(self.name, ok=False, error=f"storage: {detail[:300]}", delay=wait)

    async def _poll(self, now: datetime, on_schedule: bool = False) -> PollOutcome:
        cursor = await asyncio.to_thread(self._prepare, now, on_schedule)
        if isinstance(cursor, PollOutcome):
            return cursor
        try:
            async with asyncio.timeout(self.poll_timeout) as budget:
                result = await self.source.poll(cursor)
        except TimeoutError as exc:
            if not budget.expired():
                log.exception("source %s raised an unexpected error", self.name)
                return await asyncio.to_thread(self._failed, "unexpected", exc, now)
            # Stuck somewhere no request timeout reaches: a transient failure, retried with backoff.
            cut = TransientError(f"poll did not finish within {self.poll_timeout:g}s and was cut off")
            return await asyncio.to_thread(self._failed, "transient", cut, now)
        except RateLimitedError as exc:
            # the server's reset time, else backoff on the stored failure count
            wait = max(exc.retry_after, 1.0) if exc.retry_after is not None else None
            return await asyncio.to_thread(self._failed, "rate_limited", exc, now, wait)
        except AuthError as exc:
            return await asyncio.to_thread(self._disable, "auth", exc, now)
        except NotConfiguredError as exc:
            return await asyncio.to_thread(self._disable, "not_configured", exc, now)
        except SourceError as exc:
            return await asyncio.to_thread(self._failed, _reason(exc), exc, now)
        except Exception as exc:
            log.exception("source %s raised an unexpected error", self.name)
            return await asyncio.to_thread(self._failed, "unexpected", exc, now)
        return await asyncio.to_thread(self._succeeded, result, now)

    def _succeeded(self, result: PollResult, now: datetime) -> PollOutcome:
        delay = MORE_DELAY if result.more else self.interval_delay()
        with self.db.session() as session:
            stats, _ids = store_poll(session, self.name, result, self.watchlist, self.clock.now())
            health = session.get(models.SourceHealth, self.name)
            assert health is not None
            health.last_poll_at = now
            if not result.gone:  # a 410 ends the source: its last success stays the real one
                health.last_success_at = self.last_success_at = now
            health.polls_total += 1
            health.mentions_total += stats.inserted
            health.skipped_total += result.skipped
            health.consecutive_failures = 0
            health.next_poll_at = self.next_poll_at = self.clock.now() + timedelta(seconds=delay)
            if result.gone:
                health.disabled_reason = "the remote side answered 410 Gone"
                health.next_poll_at = self.next_poll_at = None
            self._hold_lease(session, delay)
        if self.failures:
            log.info("source %s recovered after %d failed polls", self.name, self.failures)
        self.failures = 0
        self.metrics.polls.labels(self.name, "ok").inc()
        self.metrics.source_up.labels(self.name).set(0 if result.gone else 1)
        self.metrics.mentions_fetched.labels(self.name).inc(len(result.mentions))
        self.metrics.mentions_stored.labels(self.name).inc(stats.inserted)
        for reason, count in result.skip_reasons.items():
            self.metrics.mentions_skipped.labels(self.name, reason).inc(count)
        if result.gone:
            self.disabled = "gone"
            log.warning(
                "source %s answered 410 Gone; polling stopped until the configuration changes", self.name
            )
        return PollOutcome(
            self.name, ok=True, stats=stats, delay=delay, more=result.more, skipped=result.skipped
        )

    def _record_failure(
        self,
        reason: str,
        exc: BaseException,
        now: datetime,
        disabled: str | None = None,
        delay: float | None = None,
    ) -> float:
        """Count the failure in the health row (shared by every daemon); returns the wait before the next poll.

        The wait is ``delay`` (the server's Retry-After) or the backoff for the stored failure count,
        so backoff keeps doubling whichever daemon polls; it is stored as ``next_poll_at``.
        """
        self.metrics.polls.labels(self.name, "error").inc()
        self.metrics.source_errors.labels(self.name, reason).inc()
        self.metrics.source_up.labels(self.name).set(0)
        with self.db.session() as session:
            health = session.get(models.SourceHealth, self.name)
            assert health is not None
            self.failures = (health.consecutive_failures or 0) + 1
            wait = delay if delay is not None else self.backoff_delay()
            health.last_poll_at = now
            health.last_error_at = now
            health.last_error = f"{reason}: {exc}"[:1000]
            health.consecutive_failures = self.failures
            health.polls_total += 1
            health.errors_total += 1
            if disabled:
                health.disabled_reason = disabled
                health.next_poll_at = self.next_poll_at = None
            else:
                health.next_poll_at = self.next_poll_at = self.clock.now() + timedelta(seconds=wait)
                self._hold_lease(session, wait)
        return wait

    def _failed(
        self, reason: str, exc: BaseException, now: datetime, delay: float | None = None
    ) -> PollOutcome:
        wait = self._record_failure(reason, exc, now, delay=delay)
        if self.failures == 1:
            log.warning("source %s is failing (%s): %s; retrying in %.0fs", self.name, reason, exc, wait)
        else:
            log.debug("source %s still failing (%d): %s", self.name, self.failures, exc)
        return PollOutcome(self.name, ok=False, error=f"{reason}: {exc}", delay=wait)

    def _disable(self, reason: str, exc: BaseException, now: datetime) -> PollOutcome:
        message = f"{reason}: {exc}"
        self._record_failure(reason, exc, now, disabled=message)
        self.disabled = reason
        log.error("source %s disabled (%s): %s", self.name, reason, exc)
        with self.db.session() as session:
            enqueue(
                session,
                self.settings,
                key=f"ops:{reason}:{self.name}:{now.date().isoformat()}",
                kind="ops",
                severity="critical",
                title=f"Source {self.name} stopped: {'credentials missing or refused' if reason == 'auth' else 'not configured'}",
                reason=f"{exc}. Fix the credentials or settings and reload (SIGHUP), or restart repmon for environment variables.",
                labels={"kind": "ops", "source": self.name, "severity": "critical"},
                source=self.source.kind,
                event="ops",
                now=now,
            )
        return PollOutcome(self.name, ok=False, error=message, delay=0.0)


def _reason(exc: SourceError) -> str:
    name = type(exc).__name__
    return {"TransientError": "transient", "GoneError": "gone"}.get(
        name, name.removesuffix("Error").lower() or "error"
    )


async def _sleep_or_stop(
    clock: Clock, seconds: float, stop: asyncio.Event, wake: asyncio.Event | None = None
) -> None:
    """Sleep ``seconds`` on the clock, waking early when ``stop`` (or ``wake``) is set."""
    waiters = [asyncio.ensure_future(clock.sleep(seconds)), asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            if not task.done():
                task.cancel()
