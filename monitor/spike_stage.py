"""The spike stage: per brand and metric, feeds closed volume buckets to a detector and turns its
events into one incident per crisis (raise → escalate → resolve), each update an outbox alert.

Detector state is not stored: after a restart it is rebuilt by replaying the stored counts of the
preceding weeks up to the last processed bucket (``spike_progress``), so nothing is fed twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerts.spikes import SpikeDetector, SpikeEvent, SpikeSettings
from alerts.terms import top_terms
from config.settings import Settings
from monitor import models
from monitor.clock import Clock
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.outbox import enqueue

__all__ = ["SpikeStage", "floor_bucket", "pipeline_now"]

log = logging.getLogger("repmon.spikes")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Transaction advisory lock key: one daemon at a time runs spike detection on PostgreSQL.
_SPIKE_LOCK = 0x72706D73  # "rpms"


def floor_bucket(ts: datetime, seconds: float) -> datetime:
    """Start of the bucket containing ``ts``."""
    offset = (ts - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=offset - offset % seconds)


def pipeline_now(session: Session, settings: Settings, clock: Clock) -> datetime:
    """What time it is for the pipeline: the clock, or with ``spikes.clock: data`` (replays,
    backfills) the newest stored mention's time, so a replayed week behaves as if live."""
    if settings.spikes.clock == "wall":
        return clock.now()
    return session.execute(select(func.max(models.MentionBrand.created_at))).scalar() or clock.now()


class SpikeStage:
    """Runs spike detection for every alerting brand over buckets that have closed."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
        detector_settings: SpikeSettings | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        bucket = int(settings.spikes.bucket)
        self.detector_settings = detector_settings or SpikeSettings(bucket_seconds=bucket)
        self.bucket = timedelta(seconds=self.detector_settings.bucket_seconds)
        self._detectors: dict[tuple[str, str], SpikeDetector] = {}
        #: The last bucket each cached detector was fed (compared with the stored progress).
        self._fed: dict[tuple[str, str], datetime] = {}

    def watermark(self, session: Session) -> datetime | None:
        """End of the last closed bucket: nothing earlier can still change."""
        lateness = timedelta(seconds=self.settings.spikes.lateness)
        if self.settings.spikes.clock == "wall":
            mark = self.clock.now() - lateness
        else:
            newest = session.execute(select(func.max(models.MentionBrand.created_at))).scalar()
            if newest is None:
                return None
            mark = newest - lateness
        # A bucket is closed only when every matched mention in it has been scored.
        oldest_pending = session.execute(
            select(func.min(models.Mention.created_at)).where(models.Mention.classify_state == "pending")
        ).scalar()
        if oldest_pending is not None:
            mark = min(mark, oldest_pending)
        return floor_bucket(mark, self.bucket.total_seconds())

    def run(self) -> int:
        """Process every closed bucket not yet seen; returns the number of events."""
        if not self.settings.alerts.spikes:
            return 0
        events = 0
        with self.db.session() as session:
            locked = (
                not self.db.is_postgres
                or session.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _SPIKE_LOCK}
                ).scalar()
            )
            if not locked:
                return 0  # another daemon is running spike detection right now (one at a time)
            mark = self.watermark(session)
            if mark is None:
                return 0
            for brand in self.settings.brands:
                if brand.competitor:
                    continue
                # Negative first: a total-volume incident is judged against the crisis beside it.
                for metric in sorted(self.settings.spikes.metrics, key=lambda m: m != "negative"):
                    events += self._advance(session, brand.name, metric, mark)
        return events

    def _advance(self, session: Session, brand: str, metric: str, mark: datetime) -> int:
        progress = session.get(models.SpikeProgress, (brand, metric))
        detector = self._detectors.get((brand, metric))
        fed = self._fed.get((brand, metric))
        if detector is not None and progress is not None and fed != progress.last_bucket:
            if fed is not None and fed < progress.last_bucket:
                # Another daemon went on: replay the buckets it handled (its events were its own).
                self._replay(session, detector, brand, metric, fed, progress.last_bucket)
                self._fed[(brand, metric)] = progress.last_bucket
            else:
                # Its last transaction rolled back: rebuild rather than feed buckets twice.
                detector = None
        if progress is None:
            first = session.execute(
                select(func.min(models.MentionBrand.created_at)).where(models.MentionBrand.brand == brand)
            ).scalar()
            if first is None:
                return 0
            start = floor_bucket(first, self.bucket.total_seconds())
            if self.settings.spikes.clock == "wall":
                start = max(start, floor_bucket(mark - timedelta(days=28), self.bucket.total_seconds()))
            progress = models.SpikeProgress(brand=brand, metric=metric, last_bucket=start - self.bucket)
            session.add(progress)
            detector = None
        if detector is None:
            detector = self._rebuild(session, brand, metric, progress.last_bucket)
            self._detectors[(brand, metric)] = detector
            self._fed[(brand, metric)] = progress.last_bucket
        start = progress.last_bucket + self.bucket
        if start >= mark:
            return 0
        counts = self._counts(session, brand, metric, start, mark)
        events = 0
        bucket = start
        self._fed.pop((brand, metric), None)  # unknown until these buckets are fed and stored
        while bucket < mark:
            event = detector.update(bucket, counts.get(bucket, 0))
            if event is not None:
                events += 1
                self._handle(session, brand, metric, event, bucket)
            bucket += self.bucket
        progress.last_bucket = mark - self.bucket
        self._fed[(brand, metric)] = progress.last_bucket
        self._maybe_repeat(session, brand, metric, mark)
        return events

    def _rebuild(self, session: Session, brand: str, metric: str, last: datetime) -> SpikeDetector:
        """A detector that has seen the weeks before ``last`` (inclusive), events discarded."""
        detector = SpikeDetector(self.detector_settings)
        span = self.bucket * self.detector_settings.replay_buckets
        start = last - span + self.bucket
        counts = self._counts(session, brand, metric, start, last + self.bucket)
        if not counts:
            return detector
        bucket = max(start, min(counts))
        while bucket <= last:
            detector.update(bucket, counts.get(bucket, 0))
            bucket += self.bucket
        return detector

    def _replay(
        self,
        session: Session,
        detector: SpikeDetector,
        brand: str,
        metric: str,
        after: datetime,
        last: datetime,
    ) -> None:
        """Feed ``detector`` the buckets after ``after`` up to ``last`` (inclusive), events discarded."""
        counts = self._counts(session, brand, metric, after + self.bucket, last + self.bucket)
        bucket = after + self.bucket
        while bucket <= last:
            detector.update(bucket, counts.get(bucket, 0))
            bucket += self.bucket

    def _counts(
        self, session: Session, brand: str, metric: str, start: datetime, end: datetime
    ) -> dict[datetime, int]:
        stmt = select(models.MentionBrand.created_at).where(
            models.MentionBrand.brand == brand,
            models.MentionBrand.created_at >= start,
            models.MentionBrand.created_at < end,
        )
        if metric == "negative":
            stmt = stmt.join(models.Score, models.Score.mention_id == models.MentionBrand.mention_id).where(
                models.Score.sentiment == "negative"
            )
        counter: Counter[datetime] = Counter(
            floor_bucket(ts, self.bucket.total_seconds()) for ts in session.execute(stmt).scalars()
        )
        return dict(counter)

    def _open_incident(self, session: Session, brand: str, metric: str) -> models.SpikeIncident | None:
        return session.execute(
            select(models.SpikeIncident).where(
                models.SpikeIncident.brand == brand,
                models.SpikeIncident.metric == metric,
                models.SpikeIncident.status == "open",
            )
        ).scalar_one_or_none()

    def _handle(self, session: Session, brand: str, metric: str, event: SpikeEvent, bucket: datetime) -> None:
        self.metrics.spike_events.labels(event.kind).inc()
        incident = self._open_incident(session, brand, metric)
        end = bucket + self.bucket
        if event.kind == "resolve":
            if incident is None:
                return
            incident.status = "resolved"
            _raise_peak(incident, event, bucket)
            incident.resolved_at = end
            incident.updated_at = end
            incident.last_count = event.count
            self._alert(session, incident, "resolve", event, end)
            return
        if incident is None:
            incident = models.SpikeIncident(
                brand=brand,
                metric=metric,
                status="open",
                started_at=event.started_at,
                updated_at=end,
                peak_at=bucket,
                peak_count=event.peak,
                last_count=event.count,
                expected=event.expected,
                level=event.level,
                updates=0,
            )
            session.add(incident)
            session.flush()
            self._alert(session, incident, "raise", event, end)
            return
        if event.level <= incident.level:
            return
        incident.level = event.level
        incident.updates += 1
        incident.updated_at = end
        incident.last_count = event.count
        _raise_peak(incident, event, bucket)
        self._alert(session, incident, "escalate", event, end)

    def _maybe_repeat(self, session: Session, brand: str, metric: str, mark: datetime) -> None:
        """Re-notify an open crisis nobody has heard about for ``repeat_interval``.

        Measured on the buckets' time, as ``updated_at`` is: up to ``mark``, the end of the last
        closed bucket. (The clock would repeat at once every incident of a backfill.)
        """
        incident = self._open_incident(session, brand, metric)
        if incident is None:
            return
        now = mark
        if now - incident.updated_at < timedelta(seconds=self.settings.alerts.repeat_interval):
            return
        incident.updates += 1
        incident.updated_at = now
        fake = SpikeEvent(
            "escalate",
            now,
            incident.last_count,
            incident.expected,
            incident.level,
            incident.started_at,
            incident.peak_count,
        )
        self._alert(session, incident, "repeat", fake, now)

    def _now(self, session: Session) -> datetime:
        return pipeline_now(session, self.settings, self.clock)

    def _covered(self, session: Session, incident: models.SpikeIncident) -> models.SpikeIncident | None:
        """The negative-volume crisis a total-volume incident is part of, if any.

        A crisis raises both metrics; the team needs one thread, so a total incident that starts
        during a negative one (or at most two buckets before it) sends nothing. Decided from start
        and end times only, so the raise and every later update of an incident agree.
        """
        if incident.metric != "total":
            return None
        return (
            session.execute(
                select(models.SpikeIncident)
                .where(
                    models.SpikeIncident.brand == incident.brand,
                    models.SpikeIncident.metric == "negative",
                    models.SpikeIncident.started_at <= incident.started_at + 2 * self.bucket,
                    (models.SpikeIncident.resolved_at.is_(None))
                    | (models.SpikeIncident.resolved_at >= incident.started_at),
                )
                .order_by(models.SpikeIncident.started_at)
                .limit(1)
            )
            .scalars()
            .first()
        )

    def _alert(
        self, session: Session, incident: models.SpikeIncident, kind: str, event: SpikeEvent, upto: datetime
    ) -> None:
        """Enqueue one incident update; ``upto`` is where the event's data ends (its samples stop there)."""
        crisis = self._covered(session, incident)
        if crisis is not None:
            if kind == "raise":
                log.info(
                    "volume spike for %s not alerted: part of the negative-volume crisis #%d",
                    incident.brand,
                    crisis.id,
                )
            return
        max_age = self.settings.spikes.max_age
        wall = self.settings.spikes.clock == "wall"  # on the data clock a replay is live
        if max_age is not None and wall and (self.clock.now() - upto).total_seconds() > max_age:
            # A crisis found in old buckets (a backfill, catching up after an outage) is over or,
            # if it goes on, is repeated once the buckets are current: no page about the past.
            self.metrics.alerts_suppressed.labels("too_old").inc()
            log.info(
                "spike %s for %s (%s) not alerted: its buckets end %s, older than spikes.max_age",
                kind,
                incident.brand,
                incident.metric,
                upto.isoformat(),
            )
            return
        samples, terms = self._evidence(session, incident, upto)
        what = "negative mentions" if incident.metric == "negative" else "mentions"
        if kind == "resolve":
            title = f"Resolved: {what} about {incident.brand} are back to normal"
            reason = f"volume back near the expected {event.expected:.1f} per {self._bucket_words()}"
            severity = "info"
        else:
            verb = {"raise": "forming", "escalate": "growing", "repeat": "still open"}[kind]
            title = f"Crisis {verb}: {what} about {incident.brand}"
            reason = (
                f"{event.count:.0f} {what} in the last {self._bucket_words()} vs {event.expected:.1f} expected "
                f"(level {event.level}, peak {incident.peak_count:.0f})"
            )
            severity = "critical" if incident.metric == "negative" and event.level >= 2 else "warning"
            if incident.metric == "total" and severity == "warning":
                severity = "info" if event.level < 2 else "warning"
        labels = {"brand": incident.brand, "kind": "spike", "metric": incident.metric, "severity": severity}
        number = incident.updates
        key = f"spike:{incident.brand}:{incident.metric}:{incident.id}:{kind}" + (
            f":{number}" if kind in ("escalate", "repeat") else ""
        )
        created = enqueue(
            session,
            self.settings,
            key=key,
            kind="spike",
            severity=severity,
            title=title,
            reason=reason,
            labels=labels,
            brand=incident.brand,
            incident_id=incident.id,
            event=kind,
            # Stamped when repmon raised it, like every alert: a crisis found while catching up on
            # old buckets (a backfill) reaches the team now, and counts in the digest's team
            # handling for now, next to the mention alerts of the same posts (not at bucket time).
            now=self.clock.now(),
            # What this event announced, so its message shows the numbers of its own moment
            # (and matches its "why") however late it is rendered; the incident row moves on.
            details={
                "count": event.count,
                "expected": event.expected,
                "level": event.level,
                "peak": incident.peak_count,
                "samples": samples,
                "top_terms": terms,
            },
        )
        if created:
            self.metrics.alerts_created.labels("spike").inc()
            log.warning("spike %s for %s (%s): %s", kind, incident.brand, incident.metric, reason)

    def _bucket_words(self) -> str:
        minutes = int(self.bucket.total_seconds() // 60)
        return f"{minutes} minutes" if minutes != 60 else "hour"

    def _evidence(
        self, session: Session, incident: models.SpikeIncident, now: datetime
    ) -> tuple[list[int], list[str]]:
        """Sample posts (most reached first) and the terms that set this incident apart."""
        stmt = (
            select(models.Mention.id, models.Mention.text, models.Mention.author_followers)
            .join(models.MentionBrand, models.MentionBrand.mention_id == models.Mention.id)
            .where(
                models.MentionBrand.brand == incident.brand,
                models.MentionBrand.created_at >= incident.started_at,
                models.MentionBrand.created_at < now,
                models.Mention.duplicate_of_id.is_(None),
            )
        )
        if incident.metric == "negative":
            stmt = stmt.join(models.Score, models.Score.mention_id == models.Mention.id).where(
                models.Score.sentiment == "negative"
            )
        rows = session.execute(stmt.limit(2000)).all()
        background = (
            session.execute(
                select(models.Mention.text)
                .join(models.MentionBrand, models.MentionBrand.mention_id == models.Mention.id)
                .where(
                    models.MentionBrand.brand == incident.brand,
                    models.MentionBrand.created_at < incident.started_at,
                    models.MentionBrand.created_at >= incident.started_at - timedelta(days=7),
                )
                .limit(5000)
            )
            .scalars()
            .all()
        )
        samples = [r.id for r in sorted(rows, key=lambda r: -(r.author_followers or 0))[:3]]
        terms = top_terms([r.text for r in rows], list(background), limit=5, exclude=(incident.brand,))
        return samples, terms


def _raise_peak(incident: models.SpikeIncident, event: SpikeEvent, bucket: datetime) -> None:
    """Record a higher peak and the bucket it was counted in (the detector's, else this one).

    The detector reports only level changes and the resolve, so a peak reached between them is
    learnt from the next event, which says where it was.
    """
    if event.peak > incident.peak_count:
        incident.peak_count = event.peak
        incident.peak_at = event.peak_at or bucket
