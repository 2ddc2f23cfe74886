"""Health of one daemon: what decides ``/healthz``, and the report itself.

The policy (docs/operations.md, "GET /healthz"):

- ``unhealthy`` (HTTP 503): repmon itself cannot do its job: the classifier does not load or every
  batch fails, alert delivery fails for every alert or the receiver refuses the credentials, or the
  processing loop makes no progress. (``down``, also 503, is served by the daemon when the database
  cannot be reached.)
- ``degraded`` (HTTP 200): repmon works but some sources do not (a third party's problem, or
  credentials to fix): disabled, failing, or late. A restart would not help, so a container health
  check must not fail on it; monitoring alerts on the per-source fields and metrics instead.
- ``ok`` otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.model import DeliveryError, DeliveryReceipt, Notification, Notifier
from monitor import models
from monitor.clock import Clock

if TYPE_CHECKING:
    from monitor.runtime import Runtime

__all__ = [
    "CREDENTIAL_ERRORS",
    "Condition",
    "DaemonHealth",
    "HealthProbe",
    "WatchedNotifier",
    "health_report",
    "queue_depths",
]

log = logging.getLogger("repmon.health")

#: Consecutive failures (classifier batches, deliveries) before a part counts as failing.
FAILURES_BEFORE_UNHEALTHY = 3
#: Deliveries must have failed this long (and FAILURES_BEFORE_UNHEALTHY times) before 503:
#: a short Slack outage is retried without anyone being paged.
DELIVERY_FAILING_AFTER = 300.0
#: A processing step running longer than this means the loop is stuck (a hung model or receiver).
PROCESSING_STUCK_AFTER = 600.0
#: Consecutive failed polls after which a source counts as failing (degraded, not unhealthy).
SOURCE_FAILURES_DEGRADED = 3
#: A source without a successful poll for this many intervals (plus LATE_GRACE) is late.
LATE_INTERVALS = 3
LATE_GRACE = 60.0
#: Seconds /healthz waits for the database before it answers 503 "down" (a hung server).
HEALTH_DB_TIMEOUT = 5.0

#: Slack (Web API and webhook) errors that say the credentials are refused: no alert can get through.
CREDENTIAL_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "invalid_token",
        "no_service",
        "team_disabled",
        "not_allowed_token_type",
    }
)


@dataclass(slots=True)
class Condition:
    """One part of the pipeline that can fail: since when, how often, why, and whether it was logged."""

    failing_since: datetime | None = None
    failures: int = 0
    error: str | None = None
    #: Failing at once, without waiting for a streak (classifier not loaded, credentials refused).
    fatal: bool = False
    #: Whether the failure was logged as such (so recovery is logged once too).
    reported: bool = False

    def fail(self, error: str, now: datetime, *, fatal: bool = False) -> bool:
        """Record a failure; True when it starts a failure streak."""
        first = self.failing_since is None
        if first:
            self.failing_since = now
        self.failures += 1
        self.error = error
        self.fatal = fatal
        return first

    def recover(self) -> bool:
        """Record a success; True when it ends a failure streak that was reported."""
        was_reported = self.reported
        self.failing_since, self.failures, self.error, self.fatal, self.reported = None, 0, None, False, False
        return was_reported

    def failing(
        self, now: datetime, *, failures: int = FAILURES_BEFORE_UNHEALTHY, after: float = 0.0
    ) -> bool:
        """Whether this part counts as failing now."""
        if self.failing_since is None:
            return False
        if self.fatal:
            return True
        return self.failures >= failures and (now - self.failing_since).total_seconds() >= after

    def as_dict(self, now: datetime, **policy: Any) -> dict[str, object]:
        """The condition as shown on /healthz."""
        return {
            "ok": not self.failing(now, **policy),
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "consecutive_failures": self.failures,
            "error": self.error,
        }


@dataclass(slots=True)
class DaemonHealth:
    """The in-process state behind /healthz (the database holds the sources' health)."""

    classifier: Condition = field(default_factory=Condition)
    delivery: Condition = field(default_factory=Condition)
    #: When the processing step now running started (None between steps).
    step_started_at: datetime | None = None
    #: When the processing loop last finished a step.
    step_finished_at: datetime | None = None
    #: Set when the processing loop ended while the daemon was still meant to run.
    loop_stopped: bool = False

    def stuck_for(self, now: datetime) -> float | None:
        """Seconds the current processing step has run, when that is past PROCESSING_STUCK_AFTER."""
        if self.step_started_at is None:
            return None
        running = (now - self.step_started_at).total_seconds()
        return running if running > PROCESSING_STUCK_AFTER else None


class WatchedNotifier:
    """Wraps the receiver to learn whether deliveries get through (for /healthz and one log line)."""

    def __init__(self, inner: Notifier, condition: Condition, clock: Clock) -> None:
        self.inner = inner
        self.condition = condition
        self.clock = clock
        self.name = inner.name
        self.reconciles = bool(getattr(inner, "reconciles", False))

    async def send(self, notification: Notification) -> DeliveryReceipt:
        """Deliver through the wrapped receiver, recording the outcome."""
        try:
            receipt = await self.inner.send(notification)
        except DeliveryError as exc:
            self._failed(exc)
            raise
        if self.condition.recover():
            log.info("alert delivery to %s works again", self.name)
        return receipt

    def _failed(self, exc: DeliveryError) -> None:
        if exc.retryable and exc.retry_after is not None:
            return  # rate limited: the receiver sets the pace, it does not refuse
        now = self.clock.now()
        refused = credentials_refused(exc)
        self.condition.fail(str(exc), now, fatal=refused)
        if not self.condition.reported and self.condition.failing(now, after=DELIVERY_FAILING_AFTER):
            self.condition.reported = True
            if refused:
                log.error(
                    "alert delivery to %s: the receiver refuses the credentials (%s); no alert gets "
                    "through until they are fixed (restart repmon for environment variables)",
                    self.name,
                    exc,
                )
            else:
                log.error(
                    "alert delivery to %s has failed %d times in a row since %s (%s); /healthz reports unhealthy",
                    self.name,
                    self.condition.failures,
                    self.condition.failing_since,
                    exc,
                )

    async def find_delivered(self, notification: Notification, since: datetime) -> DeliveryReceipt | None:
        """Ask the wrapped receiver."""
        return await self.inner.find_delivered(notification, since)

    async def aclose(self) -> None:
        """Close the wrapped receiver."""
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # Receiver-specific extras (e.g. SlackNotifier.update_message) pass through.
        return getattr(self.inner, name)


class HealthProbe:
    """Builds :func:`health_report` in a worker thread, waiting at most ``timeout`` for it.

    A database that hangs instead of refusing connections would otherwise hang /healthz too. While
    one probe is still stuck, later requests wait on that same probe instead of starting more: a
    hung database holds one worker thread, not one per health check.
    """

    def __init__(self, runtime: Runtime, timeout: float = HEALTH_DB_TIMEOUT) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self._probe: asyncio.Future[dict[str, object]] | None = None

    async def async_report(self) -> dict[str, object]:
        """The report; raises TimeoutError when the database does not answer within ``timeout``."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(health_report, self.runtime))
        return await asyncio.wait_for(asyncio.shield(self._probe), self.timeout)


def credentials_refused(exc: DeliveryError) -> bool:
    """Whether a delivery error says the receiver refuses repmon's credentials."""
    code = getattr(exc, "code", None)
    return bool(code) and str(code).strip().lower() in CREDENTIAL_ERRORS


def queue_depths(session: Session) -> tuple[int, int]:
    """Mentions waiting to be scored, and alerts waiting to be (or being) sent."""
    pending = session.execute(
        select(func.count()).where(models.Mention.classify_state == "pending")
    ).scalar_one()
    outbox = session.execute(
        select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
    ).scalar_one()
    return int(pending), int(outbox)


def health_report(runtime: Runtime) -> dict[str, object]:
    """Health of the daemon and each source, as served on /healthz (policy in the module docstring)."""
    with runtime.db.read_session() as session:
        healths = {
            h.source_name: h
            for h in session.execute(select(models.SourceHealth)).scalars()
            if h.source_name in runtime.coordinators
        }
        pending, outbox = queue_depths(session)
        failed = session.execute(select(func.count()).where(models.Alert.status == "failed")).scalar_one()
    now = runtime.clock.now()
    health = runtime.health
    problems: list[str] = []
    if health.classifier.failing(now):
        problems.append(f"classifier failing: {health.classifier.error}")
    if health.delivery.failing(now, after=DELIVERY_FAILING_AFTER):
        problems.append(f"alert delivery failing: {health.delivery.error}")
    stuck = health.stuck_for(now)
    if stuck is not None:
        problems.append(f"processing loop stuck: the current step has run for {stuck:.0f}s")
    if health.loop_stopped:
        problems.append("processing loop stopped")

    sources: dict[str, dict[str, object]] = {}
    for name, coordinator in runtime.coordinators.items():
        h = healths.get(name)
        last_success = h.last_success_at if h is not None else None
        since = last_success or runtime.source_added_at.get(name, runtime.started_at)
        silent = max(0.0, (now - since).total_seconds())
        late = silent > LATE_INTERVALS * coordinator.config.interval + LATE_GRACE
        failures = h.consecutive_failures if h is not None else 0
        disabled = h.disabled_reason if h is not None else None
        if disabled:
            state = "disabled"
        elif failures >= SOURCE_FAILURES_DEGRADED:
            state = "failing"
        elif late:
            state = "late"
        elif h is None or h.last_poll_at is None:
            state = "pending"
        else:
            state = "ok"
        sources[name] = {
            "kind": h.kind if h is not None else coordinator.source.kind,
            "state": state,
            "last_success_at": last_success.isoformat() if last_success else None,
            "lag_seconds": round((now - last_success).total_seconds(), 1) if last_success else None,
            "last_error": h.last_error if h is not None else None,
            "consecutive_failures": failures,
            "disabled": disabled,
            "mentions_total": h.mentions_total if h is not None else 0,
        }
    troubled = sorted(name for name, s in sources.items() if s["state"] in ("disabled", "failing", "late"))
    status = "unhealthy" if problems else "degraded" if troubled else "ok"
    return {
        "status": status,
        "daemon": runtime.owner,
        "problems": problems,
        "degraded_sources": troubled,
        "components": {
            "classifier": health.classifier.as_dict(now),
            "delivery": health.delivery.as_dict(now, after=DELIVERY_FAILING_AFTER),
            "processing": {
                "ok": stuck is None and not health.loop_stopped,
                "step_started_at": health.step_started_at.isoformat() if health.step_started_at else None,
                "last_step_at": health.step_finished_at.isoformat() if health.step_finished_at else None,
            },
        },
        "queues": {"classify": pending, "outbox": outbox, "failed_alerts": failed},
        "sources": sources,
    }
