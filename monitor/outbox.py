"""The alert outbox: routing on enqueue, and the delivery stage that sends each alert at most once.

Alertmanager's model, persisted: alerts carry labels; routes pick the channel and ``group_by``;
``group_wait``/``group_interval`` batch per-mention alerts; silences and inhibition suppress (and say
why); quiet hours defer. Before a send the rows are marked ``sending`` and committed; after a crash
such rows are reconciled with the receiver (Slack history, JSONL file) instead of being re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from alerts.model import (
    AlertItem,
    DeliveryError,
    DeliveryReceipt,
    IncidentView,
    MentionView,
    Notification,
    Notifier,
    ScoreView,
)
from config.settings import QuietHours, Settings
from monitor import models
from monitor.clock import Clock
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.sqlutil import insert_ignore, lock_skip, upsert

__all__ = [
    "DeliveryStage",
    "alert_group",
    "chunked",
    "enqueue",
    "heartbeat",
    "incident_anchor",
    "keep_alive",
    "live_daemons",
    "live_owner",
    "retry_failed",
    "route",
    "team_state",
]

log = logging.getLogger("repmon.outbox")

#: Items in one grouped message at most (Slack allows 50 blocks; each item takes a few).
MAX_GROUP_ITEMS = 10
#: Longest wait between retries of an alert whose delivery failed (exponential from 4 s).
MAX_RETRY_DELAY = 900.0
#: A ``sending`` row older than this is settled even if its daemon still beats (a hung send).
STALE_SENDING = timedelta(minutes=15)
#: Seconds before a group that another daemon is sending is looked at again.
GROUP_BUSY_RETRY = 5.0
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def chunked(rows: Sequence[models.Alert]) -> list[list[models.Alert]]:
    """One claim round's rows of a group as messages: in (created, id) order, MAX_GROUP_ITEMS each."""
    ordered = sorted(rows, key=lambda r: (r.created_at, r.id))
    return [ordered[i : i + MAX_GROUP_ITEMS] for i in range(0, len(ordered), MAX_GROUP_ITEMS)]


def retry_failed(db: Database, now: datetime, *, brand: str | None = None, ids: Sequence[int] = ()) -> int:
    """Put alerts parked as ``failed`` back in the outbox for one more attempt now."""
    stmt = update(models.Alert).where(models.Alert.status == "failed")
    if brand is not None:
        stmt = stmt.where(models.Alert.brand == brand)
    if ids:
        stmt = stmt.where(models.Alert.id.in_(list(ids)))
    with db.session() as session:
        result = session.execute(
            stmt.values(
                status="pending",
                next_attempt_at=now,
                sending_at=None,
                sending_by=None,
                status_reason=f"retried by an operator at {now:%Y-%m-%d %H:%M} UTC",
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


def route(
    settings: Settings, labels: dict[str, str], brand: str | None, kind: str
) -> list[tuple[str, tuple[str, ...]]]:
    """Channels (with their group_by) an alert with ``labels`` goes to."""
    targets: list[tuple[str, tuple[str, ...]]] = []
    for r in settings.alerts.routes:
        if all(labels.get(k) == v for k, v in r.match.items()):
            targets.append((r.channel, r.group_by or settings.alerts.group_by))
            if not r.continue_:
                return targets
    if targets:
        return targets
    if kind == "ops" and settings.slack.ops_channel:
        return [(settings.slack.ops_channel, settings.alerts.group_by)]
    brand_settings = settings.brand(brand) if brand else None
    channels = (brand_settings.channels if brand_settings else ()) or (settings.slack.default_channel,)
    return [(c, settings.alerts.group_by) for c in channels]


def enqueue(
    session: Session,
    settings: Settings,
    *,
    key: str,
    kind: str,
    severity: str,
    title: str,
    reason: str,
    labels: dict[str, str],
    now: datetime,
    brand: str | None = None,
    source: str | None = None,
    mention_id: int | None = None,
    incident_id: int | None = None,
    event: str = "mention",
    details: dict[str, Any] | None = None,
) -> bool:
    """Put an alert in the outbox once per key and channel; returns whether it was new."""
    created = False
    targets = route(settings, labels, brand, kind)
    for channel, group_by in targets:
        if incident_id is not None:
            group_key = f"{channel}|incident:{incident_id}"
        else:
            group_key = channel + "|" + ",".join(f"{g}={labels.get(g, '')}" for g in group_by)
        row_key = key if len(targets) == 1 else f"{key}@{channel}"
        new_id = insert_ignore(
            session,
            models.Alert.__table__,
            {
                "key": row_key[:255],
                "kind": kind,
                "brand": brand,
                "source": source,
                "severity": severity,
                "channel": channel,
                "group_key": group_key[:255],
                "labels": labels,
                "title": title,
                "reason": reason,
                "mention_id": mention_id,
                "incident_id": incident_id,
                "event": event,
                "details": details or {},
                "status": "pending",
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
            },
            returning=models.Alert.id,
        )
        created = created or new_id is not None
    return created


def live_owner(owner_column: Any, now: datetime, ttl: float) -> Any:
    """SQL condition: the daemon named in ``owner_column`` has a fresh heartbeat."""
    return exists().where(
        models.DaemonHeartbeat.owner == owner_column,
        models.DaemonHeartbeat.heartbeat_at >= now - timedelta(seconds=ttl),
    )


def heartbeat(db: Database, owner: str, roles: str, now: datetime) -> None:
    """Record that ``owner`` is alive."""
    with db.session() as session:
        upsert(
            session,
            models.DaemonHeartbeat.__table__,
            {"owner": owner, "roles": roles, "started_at": now, "heartbeat_at": now},
            keys=["owner"],
            update=["heartbeat_at", "roles"],
        )


def forget_heartbeat(db: Database, owner: str) -> None:
    """Remove ``owner``'s heartbeat: it has finished, so what it left behind needs no waiting for."""
    with db.session() as session:
        session.execute(delete(models.DaemonHeartbeat).where(models.DaemonHeartbeat.owner == owner))


def live_daemons(db: Database, now: datetime, ttl: float, *, besides: str) -> list[str]:
    """Owners other than ``besides`` with a heartbeat fresher than ``ttl`` seconds."""
    with db.read_session() as session:
        return list(
            session.execute(
                select(models.DaemonHeartbeat.owner).where(
                    models.DaemonHeartbeat.owner != besides,
                    models.DaemonHeartbeat.heartbeat_at >= now - timedelta(seconds=ttl),
                )
            ).scalars()
        )


@contextlib.asynccontextmanager
async def keep_alive(db: Database, owner: str, roles: str, clock: Clock, ttl: float) -> AsyncIterator[None]:
    """Beat for ``owner`` while the block runs (``repmon once``), then remove the heartbeat.

    Alerts it claims stay its own while it runs, so another process reconciling ``sending`` rows
    leaves them alone. On SQLite another live process is worth a warning: SQLite is for one daemon.
    """
    now = clock.now()
    await asyncio.to_thread(heartbeat, db, owner, roles, now)
    if not db.is_postgres:
        others = await asyncio.to_thread(live_daemons, db, now, ttl, besides=owner)
        if others:
            log.warning(
                "another repmon process is running against this SQLite database (%s); SQLite is for "
                "one daemon: its claimed alerts are left to it, but both poll and write the same file",
                ", ".join(sorted(others)),
            )

    async def beat() -> None:
        while True:
            # Real seconds, not the injected clock: this paces a process that really runs.
            await asyncio.sleep(max(0.05, ttl / 3))
            try:
                await asyncio.to_thread(heartbeat, db, owner, roles, clock.now())
            except Exception:  # the work itself reports database trouble
                log.debug("heartbeat of %s failed; retrying", owner, exc_info=True)

    task = asyncio.create_task(beat(), name="heartbeat")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await asyncio.to_thread(forget_heartbeat, db, owner)


def process_gone(owner: str | None) -> bool:
    """Whether ``owner`` (a daemon id: host, pid, suffix) names a process on this host that has ended.

    Only a definite answer counts: another host, an unreadable id or a process that exists (or
    might: no permission to ask) are not known to be gone, and their heartbeat decides.
    """
    if not owner or os.name != "posix":
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != socket.gethostname():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """End of the quiet window containing ``now`` (UTC), or None when not quiet."""
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    for day_offset in (0, -1):
        start_day = (local + timedelta(days=day_offset)).date()
        if _DAYS[start_day.weekday()] not in quiet.days:
            continue
        start = datetime.combine(start_day, quiet.start, zone)
        end_day = start_day if quiet.end > quiet.start else start_day + timedelta(days=1)
        end = datetime.combine(end_day, quiet.end, zone)
        if start <= local < end:
            return end.astimezone(now.tzinfo)
    return None


class DeliveryStage:
    """Sends due outbox alerts through one notifier, applying silences, inhibition and timing."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        notifier: Notifier,
        clock: Clock,
        metrics: Metrics,
        *,
        owner: str = "local",
        owner_ttl: float = 60.0,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notifier = notifier
        self.clock = clock
        self.metrics = metrics
        self.owner = owner
        self.owner_ttl = owner_ttl
        #: After a rate limit (429 + Retry-After) nothing is sent to the receiver until then.
        self.paused_until: datetime | None = None
        #: When this process last failed to reach the database (None: not since it started).
        self.database_failed_at: datetime | None = None

    def database_failed(self, when: datetime) -> None:
        """Note that this process could not reach the database at ``when`` (a beat or step failed).

        Until it has seen the database for ``owner_ttl`` again, a stale heartbeat of another daemon
        proves nothing: the others could not beat through the same outage either (see reconcile).
        """
        if self.database_failed_at is None or when > self.database_failed_at:
            self.database_failed_at = when

    def _trusts_heartbeats(self, now: datetime) -> bool:
        """Whether another daemon's stale heartbeat may be taken as its death right now."""
        failed = self.database_failed_at
        return failed is None or (now - failed).total_seconds() >= self.owner_ttl

    async def reconcile(self) -> int:
        """Settle rows left ``sending`` by a crash: found at the receiver → sent, else per policy.

        Only rows whose sender is known to be gone are touched: this process's own (left by an
        interrupted step), a sender whose heartbeat is older than ``owner_ttl`` or whose process
        on this host has ended, or a send older than :data:`STALE_SENDING` (hung). A live sender's
        rows are its own, on SQLite as on PostgreSQL: ``repmon once`` next to a daemon, or two
        ``once`` runs, must not re-send what the other is still sending. A stale heartbeat counts
        only once this process has seen the database for ``owner_ttl`` since it last failed to
        (after an outage nobody could beat). The rows are claimed for this process (``sending_by``
        becomes its name, in one transaction) before the receiver is asked, and every later update
        applies only while that claim holds, so two daemons never settle the same rows.
        """
        now = self.clock.now()
        try:
            claimed = await asyncio.to_thread(self._claim_orphans, now)
        except Exception:
            self.database_failed(self.clock.now())
            raise
        settled = 0
        by_group: dict[str, list[models.Alert]] = {}
        for row, _why in claimed:
            # One claim round sends one message per group: rows sharing group and claim time
            # went out (or not) together.
            by_group.setdefault(f"{row.group_key}@{row.sending_at}", []).append(row)
        # Chunks are sent in order, so the ones still 'sending' re-chunk along the same borders.
        claims = [chunk for group_rows in by_group.values() for chunk in chunked(group_rows)]
        for group_rows in claims:
            notification = self._notification(group_rows)
            since = min(r.sending_at or r.created_at for r in group_rows) - timedelta(seconds=5)
            receipt = await self.notifier.find_delivered(notification, since)
            with self.db.session() as session:
                # Still ours as claimed: nobody else settles or re-sends them meanwhile.
                ids = [r.id for r in group_rows]
                ours = (
                    models.Alert.id.in_(ids),
                    models.Alert.status == "sending",
                    models.Alert.sending_by == self.owner,
                    models.Alert.sending_at == group_rows[0].sending_at,
                )
                if receipt is not None:
                    changed = self._mark_sent(
                        session,
                        group_rows,
                        receipt,
                        now,
                        reason="confirmed at the receiver after restart",
                        where=ours,
                    )
                elif self.notifier.reconciles:
                    changed = _rowcount(
                        session.execute(
                            update(models.Alert)
                            .where(*ours)
                            .values(status="pending", sending_at=None, sending_by=None)
                        )
                    )
                else:
                    # The receiver cannot be asked; re-sending could duplicate, so at most once wins.
                    changed = _rowcount(
                        session.execute(
                            update(models.Alert)
                            .where(*ours)
                            .values(
                                status="sent", status_reason="unconfirmed: crashed while sending", sent_at=now
                            )
                        )
                    )
            settled += changed
        if settled:
            whys = sorted({why for _row, why in claimed})
            log.warning("reconciled %d alerts left in 'sending' (%s)", settled, "; ".join(whys))
        return settled

    def _claim_orphans(self, now: datetime) -> list[tuple[models.Alert, str]]:
        """Claim for this process the ``sending`` rows whose sender is known to be gone, with why.

        One transaction: on PostgreSQL the rows are locked (``SKIP LOCKED``: another daemon
        claiming them now keeps them), on SQLite the write lock is held from the start. The claim
        keeps ``sending_at`` (it marks which rows went out together and since when to look).
        """
        trust = self._trusts_heartbeats(now)
        with self.db.session() as session:
            found = session.execute(
                lock_skip(
                    session,
                    select(models.Alert, live_owner(models.Alert.sending_by, now, self.owner_ttl)).where(
                        models.Alert.status == "sending"
                    ),
                )
            ).all()
            claimed: list[tuple[models.Alert, str]] = []
            for row, live in found:
                sending_at = row.sending_at
                if sending_at is not None and sending_at.tzinfo is None:
                    sending_at = sending_at.replace(tzinfo=UTC)
                owner = row.sending_by
                if owner == self.owner:
                    why = "left by an interrupted step of this daemon"
                elif sending_at is None or sending_at < now - STALE_SENDING:
                    why = "a send stuck for more than 15 minutes"
                elif process_gone(owner):
                    why = f"its sender {owner} has ended"
                elif not live and trust:
                    why = f"its sender {owner} stopped beating"
                else:
                    continue
                result = session.execute(
                    update(models.Alert)
                    .where(
                        models.Alert.id == row.id,
                        models.Alert.status == "sending",
                        models.Alert.sending_by.is_(None)
                        if owner is None
                        else models.Alert.sending_by == owner,
                        models.Alert.sending_at.is_(None)
                        if row.sending_at is None
                        else models.Alert.sending_at == row.sending_at,
                    )
                    .values(sending_by=self.owner)
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(result) == 1:
                    claimed.append((row, why))
            if claimed:
                self._beat(session, now)  # the claim is ours while we beat (as in _claim)
            session.expunge_all()
        for row, _why in claimed:
            row.sending_by = self.owner
        return claimed

    async def run_batch(self) -> int:
        """Deliver what is due; returns the number of alerts sent."""
        now = self.clock.now()
        if self.paused_until is not None and now < self.paused_until:
            return 0
        batches = await asyncio.to_thread(self._claim, now)
        sent = 0
        for index, rows in enumerate(batches):
            if self.paused_until is not None and self.clock.now() < self.paused_until:
                # Rate limited while sending this round: the rest waits, unsent, without an attempt.
                rest = [row.id for batch in batches[index:] for row in batch]
                await asyncio.to_thread(self._release, rest, self.paused_until)
                break
            sent += await self._deliver(rows)
        return sent

    def _release(self, ids: list[int], until: datetime) -> None:
        with self.db.session() as session:
            session.execute(
                update(models.Alert)
                .where(models.Alert.id.in_(ids), models.Alert.status == "sending")
                .values(status="pending", sending_at=None, sending_by=None, next_attempt_at=until)
            )

    async def drain(self, max_rounds: int = 1000) -> int:
        """Deliver until nothing is due now (burst mode)."""
        total = 0
        for _ in range(max_rounds):
            done = await self.run_batch()
            if not done:
                break
            total += done
        return total

    def next_due(self) -> datetime | None:
        """When the next waiting alert falls due (None when none waits for a time in the future).

        Alerts already due but not sent by the last step are held back by something else (an
        earlier incident update, throttling) and are looked at again on the regular tick.
        """
        now = self.clock.now()
        with self.db.read_session() as session:
            due = session.execute(
                select(func.min(models.Alert.next_attempt_at)).where(
                    models.Alert.status == "pending", models.Alert.next_attempt_at > now
                )
            ).scalar_one()
        if due is None:
            return None
        due = due if due.tzinfo is not None else due.replace(tzinfo=UTC)
        if self.paused_until is not None:
            due = max(due, self.paused_until)
        return due

    def pending(self) -> int:
        """Alerts waiting in the outbox."""
        with self.db.session() as session:
            return int(
                session.execute(
                    select(func.count()).where(models.Alert.status.in_(("pending", "sending")))
                ).scalar_one()
            )

    # -- claiming ---------------------------------------------------------------------------

    def _claim(self, now: datetime) -> list[list[models.Alert]]:
        """Pick due alerts, apply suppression and timing, mark the chosen ones ``sending``."""
        with self.db.session() as session:
            stmt = lock_skip(
                session,
                select(models.Alert)
                .where(models.Alert.status == "pending", models.Alert.next_attempt_at <= now)
                .order_by(models.Alert.created_at, models.Alert.id)
                .limit(500),
            )
            rows = list(session.execute(stmt).scalars())
            if not rows:
                return []
            silences = list(
                session.execute(
                    select(models.Silence).where(
                        models.Silence.starts_at <= now, models.Silence.ends_at > now
                    )
                ).scalars()
            )
            open_crises = set(
                session.execute(
                    select(models.SpikeIncident.brand).where(
                        models.SpikeIncident.status == "open", models.SpikeIncident.metric == "negative"
                    )
                ).scalars()
            )
            groups: dict[str, list[models.Alert]] = {}
            for row in rows:
                reason = self._suppression(row, silences, open_crises)
                if reason is not None:
                    row.status = "suppressed"
                    row.status_reason = reason
                    self.metrics.alerts_suppressed.labels(reason.split(" ")[0].rstrip(":")).inc()
                    log.info("alert %s suppressed: %s", row.key, reason)
                    continue
                quiet = self._quiet(row.channel)
                until = quiet_until(quiet, now) if quiet else None
                if until is not None:
                    row.next_attempt_at = until
                    row.status_reason = f"quiet hours in {row.channel} until {until.isoformat()}"
                    continue
                groups.setdefault(row.group_key, []).append(row)
            batches: list[list[models.Alert]] = []
            claimed = False
            sent_last_minute = self._sent_since(session, now - timedelta(minutes=1))
            self._lock_groups(session, groups)
            for group_key, members in groups.items():
                batch = self._timing(session, group_key, members, now)
                if not batch:
                    continue
                channel = batch[0].channel
                if sent_last_minute.get(channel, 0) >= self.settings.alerts.max_per_minute:
                    for row in batch:
                        row.next_attempt_at = now + timedelta(seconds=60)
                        row.status_reason = f"throttled: {channel} had {self.settings.alerts.max_per_minute} alerts this minute"
                    continue
                sent_last_minute[channel] = sent_last_minute.get(channel, 0) + 1
                for row in batch:
                    row.status = "sending"
                    row.sending_at = now
                    row.sending_by = self.owner
                claimed = True
                # A busy group is sent in full, as several messages of at most MAX_GROUP_ITEMS
                # (waiting a group_interval per ten alerts would let a loud brand's backlog grow).
                batches.extend(chunked(batch))
            if claimed:
                self._beat(session, now)
            return batches

    def _beat(self, session: Session, now: datetime) -> None:
        """Write this process's heartbeat in the transaction of a claim.

        A claim is this process's while its heartbeat is fresh: beating with the claim means a
        sender without a heartbeat loop (a script, ``repmon once`` before it beats) is never taken
        for dead by another process reconciling.
        """
        upsert(
            session,
            models.DaemonHeartbeat.__table__,
            {"owner": self.owner, "roles": "alert", "started_at": now, "heartbeat_at": now},
            keys=["owner"],
            update=["heartbeat_at"],
        )

    def _lock_groups(self, session: Session, groups: dict[str, list[models.Alert]]) -> None:
        """Create the groups' log rows and, on PostgreSQL, lock them until this claim commits.

        Always in key order: two daemons creating or locking overlapping groups in different orders
        would deadlock. While locked, another daemon's claim of the same group waits, then sees what
        this one marked ``sending`` (see :meth:`_timing`).
        """
        for key in sorted(groups):
            alert_group(session, key, min(m.created_at for m in groups[key]))
        if self.db.is_postgres and groups:
            session.execute(
                select(models.AlertGroup.group_key)
                .where(models.AlertGroup.group_key.in_(sorted(groups)))
                .order_by(models.AlertGroup.group_key)
                .with_for_update()
            ).all()

    def _suppression(
        self, row: models.Alert, silences: Sequence[models.Silence], open_crises: set[str]
    ) -> str | None:
        labels = dict(row.labels or {})
        for silence in silences:
            if silence.matchers and all(labels.get(k) == v for k, v in silence.matchers.items()):
                return f"silenced by silence #{silence.id} until {silence.ends_at.isoformat()}"
        if row.kind == "complaint" and row.brand in open_crises:
            return f"inhibited: an open crisis for {row.brand} carries these posts in its thread"
        return None

    def _quiet(self, channel: str) -> QuietHours | None:
        for r in self.settings.alerts.routes:
            if r.channel == channel and r.quiet_hours is not None:
                return r.quiet_hours
        return self.settings.alerts.quiet_hours.get(channel)

    def _timing(
        self, session: Session, group_key: str, members: list[models.Alert], now: datetime
    ) -> list[models.Alert]:
        """Alertmanager timing: the part of a group that may be sent now (the rest waits)."""
        group = alert_group(session, group_key, min(m.created_at for m in members))
        if members[0].incident_id is not None:
            # Incident updates go one at a time, in order, into the same thread: an earlier update
            # still waiting (say, for a retry) holds the later ones back.
            earlier = session.execute(
                select(func.count()).where(
                    models.Alert.group_key == group_key,
                    models.Alert.status.in_(("pending", "sending")),
                    models.Alert.id < members[0].id,
                )
            ).scalar_one()
            return [] if earlier else members[:1]
        if self._sending_elsewhere(session, group_key, now):
            # Another daemon is sending part of this group right now: wait for its notification
            # (then group_interval applies) instead of sending the rest as a second message.
            for m in members:
                m.next_attempt_at = now + timedelta(seconds=GROUP_BUSY_RETRY)
            return []
        alerts = self.settings.alerts
        if group.last_notified_at is None:
            ready_at = group.first_seen_at + timedelta(seconds=alerts.group_wait)
        else:
            ready_at = group.last_notified_at + timedelta(seconds=alerts.group_interval)
        if now < ready_at:
            for m in members:
                m.next_attempt_at = ready_at
            return []
        return members

    def _sending_elsewhere(self, session: Session, group_key: str, now: datetime) -> bool:
        """Whether a live daemon other than this one has alerts of ``group_key`` in ``sending``."""
        busy = session.execute(
            select(func.count()).where(
                models.Alert.group_key == group_key,
                models.Alert.status == "sending",
                models.Alert.sending_by != self.owner,
                models.Alert.sending_at >= now - STALE_SENDING,
                live_owner(models.Alert.sending_by, now, self.owner_ttl),
            )
        ).scalar_one()
        return bool(busy)

    def _sent_since(self, session: Session, since: datetime) -> dict[str, int]:
        rows = session.execute(
            select(models.Alert.channel, func.count(func.distinct(models.Alert.group_key)))
            .where(models.Alert.sent_at >= since, models.Alert.status == "sent")
            .group_by(models.Alert.channel)
        ).all()
        return {channel: int(count) for channel, count in rows}

    # -- sending ----------------------------------------------------------------------------

    async def _deliver(self, rows: list[models.Alert]) -> int:
        notification = await asyncio.to_thread(self._notification, rows)
        now = self.clock.now()
        try:
            receipt = await self.notifier.send(notification)
        except DeliveryError as exc:
            if exc.retryable and exc.retry_after is not None:
                self.paused_until = now + timedelta(seconds=exc.retry_after)
            await asyncio.to_thread(self._failed, rows, exc, now)
            return 0
        await asyncio.to_thread(self._record_sent, rows, receipt, now)
        if rows[0].incident_id is not None and receipt.message_ts and receipt.channel:
            await self._show_clicks_since_render(rows, notification, receipt)
        return len(rows)

    async def _show_clicks_since_render(
        self, rows: list[models.Alert], sent: Notification, receipt: DeliveryReceipt
    ) -> None:
        """Re-render an incident root that a button click raced.

        A click recorded while this update was on its way re-rendered the root from the update
        before it (this one was not sent yet), and this update, rendered before the click, then
        replaced the root without the claim. One more chat.update shows both.
        """
        update = getattr(self.notifier, "update_message", None)
        if update is None:
            return
        fresh = await asyncio.to_thread(self._notification, rows)
        if _team_view(fresh) == _team_view(sent):
            return
        assert receipt.channel is not None and receipt.message_ts is not None
        try:
            await update(receipt.channel, receipt.message_ts, fresh)
        except DeliveryError as exc:
            log.warning("could not show a click on incident root %s: %s", receipt.message_ts, exc)

    def _record_sent(self, rows: list[models.Alert], receipt: DeliveryReceipt, now: datetime) -> None:
        with self.db.session() as session:
            self._mark_sent(session, rows, receipt, now)

    def _mark_sent(
        self,
        session: Session,
        rows: list[models.Alert],
        receipt: DeliveryReceipt,
        now: datetime,
        reason: str | None = None,
        where: Sequence[Any] = (),
    ) -> int:
        """Record ``rows`` as delivered (only those still matching ``where``); returns how many."""
        result = session.execute(
            update(models.Alert)
            .where(models.Alert.id.in_([r.id for r in rows]), *where)
            .values(
                status="sent",
                sent_at=now,
                receiver=receipt.receiver,
                message_ts=receipt.message_ts,
                message_channel=receipt.channel,
                status_reason=reason,
                attempts=models.Alert.attempts + 1,
            )
        )
        changed = _rowcount(result) if where else len(rows)
        if not changed:
            return 0  # no longer ours to settle (see reconcile)
        group = alert_group(session, rows[0].group_key, rows[0].created_at)
        group.last_notified_at = now
        if receipt.message_ts and (
            rows[0].event == "raise"
            or (rows[0].incident_id is not None and receipt.message_ts != group.thread_ts)
        ):
            # A raise starts the incident's thread. An update answers with the root it went to: a
            # different one means the old root was deleted and a new root posted, which the
            # following updates must edit (not post yet another root each).
            group.thread_ts = receipt.message_ts
            group.thread_channel = receipt.channel
        for row in rows:
            self.metrics.alerts_sent.labels(row.kind, receipt.receiver).inc()
        return changed

    def _failed(self, rows: list[models.Alert], exc: DeliveryError, now: datetime) -> None:
        self.metrics.alerts_failed.labels(self.notifier.name, str(exc.retryable).lower()).inc(len(rows))
        with self.db.session() as session:
            for row in rows:
                fresh = session.get(models.Alert, row.id)
                if fresh is None:
                    continue
                fresh.attempts += 1
                fresh.last_error = str(exc)[:1000]
                fresh.sending_at = None
                # Retryable failures (5xx, connection, 429) are retried until the alert is
                # give_up_after old, however many attempts that takes: a long outage delays alerts
                # but does not lose them. Only a permanent error (bad token, unknown channel) or
                # that age parks one as failed (`repmon alerts retry` sends those again).
                created = (
                    fresh.created_at if fresh.created_at.tzinfo else fresh.created_at.replace(tzinfo=UTC)
                )
                too_old = (now - created).total_seconds() >= self.settings.alerts.give_up_after
                if exc.retryable and not too_old:
                    delay = (
                        exc.retry_after
                        if exc.retry_after is not None
                        else min(MAX_RETRY_DELAY, 2.0 * 2 ** min(fresh.attempts, 16))
                    )
                    fresh.status = "pending"
                    fresh.next_attempt_at = now + timedelta(seconds=delay)
                else:
                    fresh.status = "failed"
                    fresh.status_reason = (
                        "permanent delivery error"
                        if not exc.retryable
                        else f"still failing {self.settings.alerts.give_up_after / 3600:g} h after it was raised"
                    )
        log.warning(
            "delivery of %d alert(s) to %s failed (%s): %s",
            len(rows),
            rows[0].channel,
            "will retry" if exc.retryable else "giving up",
            exc,
        )

    # -- rendering input --------------------------------------------------------------------

    def notification_for(self, rows: list[models.Alert]) -> Notification:
        """The notification for these outbox rows, rendered from their current state."""
        return self._notification(rows)

    def _notification(self, rows: list[models.Alert]) -> Notification:
        with self.db.session() as session:
            items = tuple(_item(session, row) for row in rows)
            group = session.get(models.AlertGroup, rows[0].group_key)
            thread_ts = group.thread_ts if group is not None and rows[0].event != "raise" else None
            thread_channel = group.thread_channel if group is not None else None
        return Notification(
            channel=rows[0].channel,
            group_key=rows[0].group_key,
            items=items,
            thread_ts=thread_ts,
            thread_channel=thread_channel,
        )


def _team_view(notification: Notification) -> list[tuple[str | None, ...]]:
    return [(i.claimed_by, i.handled_by, i.dismissed_by) for i in notification.items]


def _rowcount(result: Any) -> int:
    """Rows an UPDATE changed (0 where the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)


def mention_view(session: Session, mention_id: int, brand: str | None = None) -> MentionView | None:
    """A stored mention as notifiers show it."""
    mention = session.get(models.Mention, mention_id)
    if mention is None:
        return None
    tagged = False
    if brand is not None:
        tagged = bool(
            session.execute(
                select(models.MentionBrand.tagged).where(
                    models.MentionBrand.mention_id == mention_id, models.MentionBrand.brand == brand
                )
            ).scalar()
        )
    return MentionView(
        source=mention.source,
        text=mention.text,
        created_at=mention.created_at,
        url=mention.url,
        author_handle=mention.author_handle,
        author_name=mention.author_name,
        followers=mention.author_followers,
        language=mention.language,
        title=mention.title,
        rating=mention.rating,
        rating_max=mention.rating_max,
        tagged=tagged,
    )


def _item(session: Session, row: models.Alert) -> AlertItem:
    mention = mention_view(session, row.mention_id, row.brand) if row.mention_id else None
    score = session.get(models.Score, row.mention_id) if row.mention_id else None
    incident = None
    if row.incident_id is not None:
        inc = session.get(models.SpikeIncident, row.incident_id)
        if inc is not None:
            # An incident message shows the numbers its own event announced (stored with the alert),
            # never the incident's later state: a raise sent late still reads as the raise, and its
            # fields agree with its "why". Each update re-renders the thread root with its own
            # numbers; updates go out in order, so the root always shows the latest one delivered.
            # Rows written before the peak was recorded fall back to the incident's current values.
            details = row.details or {}
            samples = tuple(
                v
                for v in (mention_view(session, int(i), row.brand) for i in details.get("samples", []))
                if v is not None
            )
            incident = IncidentView(
                incident_id=inc.id,
                brand=inc.brand,
                metric=inc.metric,
                status="resolved" if row.event == "resolve" else "open",
                started_at=inc.started_at,
                count=float(details.get("count", inc.last_count)),
                expected=float(details.get("expected", inc.expected)),
                peak_count=float(details.get("peak", inc.peak_count)),
                level=int(details.get("level", inc.level)),
                resolved_at=inc.resolved_at if row.event == "resolve" else None,
                samples=samples,
                top_terms=tuple(details.get("top_terms", [])),
            )
    return AlertItem(
        alert_id=row.id,
        key=row.key,
        kind=row.kind,  # type: ignore[arg-type]
        event=row.event,  # type: ignore[arg-type]
        severity=row.severity,  # type: ignore[arg-type]
        title=row.title,
        reason=row.reason,
        brand=row.brand,
        labels=dict(row.labels or {}),
        mention=mention,
        scores=(
            ScoreView(
                sentiment=score.sentiment,
                p_negative=score.p_negative,
                p_neutral=score.p_neutral,
                p_positive=score.p_positive,
                complaint=score.complaint,
                model=score.model,
                severity=score.severity,
            )
            if score is not None
            else None
        ),
        incident=incident,
        **team_state(session, row),
    )


def incident_anchor(session: Session, row: models.Alert) -> models.Alert:
    """The alert that holds the team's actions on ``row``'s incident: its raise in the same channel.

    An incident is one Slack root that every update re-renders with its own buttons, so a click may
    name any of its alerts; the digest counts the incident once, by its raise, so that is where a
    claim (handled, not relevant) is kept. Any other alert is its own anchor.
    """
    if row.incident_id is None or row.event == "raise":
        return row
    raised = session.execute(
        select(models.Alert)
        .where(
            models.Alert.group_key == row.group_key,
            models.Alert.incident_id == row.incident_id,
            models.Alert.event == "raise",
        )
        .limit(1)
    ).scalar_one_or_none()
    return raised if raised is not None else row


def team_state(session: Session, row: models.Alert) -> dict[str, str | None]:
    """Who claimed, handled and dismissed an alert as shown with it (``claimed_by``, ...).

    For an incident that is the incident's state, whichever update is shown: each action as first
    recorded on any of its alerts in this channel (the raise first, where clicks are kept), so an
    escalation delivered after a claim does not drop it from the root or bring back the button.
    """
    names = ("claimed_by", "handled_by", "dismissed_by")
    own = {name: getattr(row, name) for name in names}
    if row.incident_id is None:
        return own
    rows = session.execute(
        select(models.Alert.claimed_by, models.Alert.handled_by, models.Alert.dismissed_by)
        .where(models.Alert.group_key == row.group_key, models.Alert.incident_id == row.incident_id)
        .order_by(models.Alert.id)
    ).all()
    state: dict[str, str | None] = dict.fromkeys(names)
    for values in [*rows, tuple(own.values())]:
        for name, value in zip(names, values, strict=True):
            state[name] = state[name] or value
    return state


def alert_group(session: Session, group_key: str, first_seen_at: datetime) -> models.AlertGroup:
    """The notification-log row of a group, created if missing.

    Two daemons claiming different alerts of a new group at once would both try to insert it; the
    insert ignores a conflict (on PostgreSQL it waits for the other transaction and then finds its
    row), so neither fails.
    """
    group = session.get(models.AlertGroup, group_key)
    if group is None:
        insert_ignore(
            session, models.AlertGroup.__table__, {"group_key": group_key, "first_seen_at": first_seen_at}
        )
        group = session.get(models.AlertGroup, group_key)
        if group is None:  # pragma: no cover - the row exists after the insert, ours or theirs
            raise RuntimeError(f"alert group {group_key!r} vanished")
    return group
