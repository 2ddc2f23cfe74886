"""The classify stage: scores pending mentions in batches, off the event loop.

A failure never turns into "neutral": the batch stays unscored, its attempt counter grows and it
is retried after a backoff; after ``max_attempts`` a mention is parked as ``failed`` (counted, logged).
A failing batch is split in halves and retried at once, so one text the classifier cannot score
fails (and is counted, retried, parked) alone while the rest of its batch is scored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from classifiers.base import Classifier, ClassifierError, Scores, calibrated_praise_threshold
from monitor import models
from monitor.clock import Clock
from monitor.db import Database
from monitor.metrics import Metrics
from monitor.sqlutil import insert_ignore, lock_skip

__all__ = ["ClassifyStage", "classify_text"]

log = logging.getLogger("repmon.classify")


class ClassifyStage:
    """Claims pending mentions, scores them, stores the scores with the model id."""

    def __init__(
        self,
        db: Database,
        classifier: Classifier,
        clock: Clock,
        metrics: Metrics,
        *,
        batch_size: int = 64,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.classifier = classifier
        self.clock = clock
        self.metrics = metrics
        self.batch_size = batch_size
        self.max_attempts = max_attempts

    def _due(self, now: datetime) -> object:
        return select(
            models.Mention.id, models.Mention.text, models.Mention.title, models.Mention.language
        ).where(
            models.Mention.classify_state == "pending",
            (models.Mention.next_classify_at.is_(None)) | (models.Mention.next_classify_at <= now),
        )

    def pending(self) -> int:
        """How many mentions wait for scoring."""
        with self.db.session() as session:
            return int(
                session.execute(
                    select(func.count()).where(models.Mention.classify_state == "pending")
                ).scalar_one()
            )

    async def run_batch(self) -> int:
        """Score one batch; returns how many mentions were scored (0 when none were due)."""
        if self.db.is_postgres:
            return await asyncio.to_thread(self._batch_locked)
        return await self._batch_optimistic()

    async def drain(self, limit: int | None = None) -> int:
        """Score batches until nothing is due (burst mode); returns the total scored."""
        total = 0
        while limit is None or total < limit:
            try:
                done = await self.run_batch()
            except ClassifierError:
                # Already counted and rescheduled; stop this burst so the backoff takes effect.
                break
            if not done:
                break
            total += done
        return total

    # PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED and held while scoring, so several
    # daemons score disjoint batches and a dead daemon's rows are released with its transaction.
    def _batch_locked(self) -> int:
        now = self.clock.now()
        with self.db.session() as session:
            stmt = lock_skip(session, self._due(now).order_by(models.Mention.id).limit(self.batch_size))  # type: ignore[attr-defined]
            rows = session.execute(stmt).all()
            if not rows:
                return 0
            scored, failed = self._score_isolating(rows)
            done, error = self._finish(session, scored, failed, now)
        if error is not None:  # raised after the session commits the recorded failure
            raise error
        return done

    # SQLite: one writer at a time, so read, score outside any transaction, then write briefly.
    async def _batch_optimistic(self) -> int:
        now = self.clock.now()
        with self.db.session() as session:
            rows = session.execute(self._due(now).order_by(models.Mention.id).limit(self.batch_size)).all()  # type: ignore[attr-defined]
        if not rows:
            return 0
        scored, failed = await asyncio.to_thread(self._score_isolating, rows)
        with self.db.session() as session:
            done, error = self._finish(session, scored, failed, now)
        if error is not None:
            raise error
        return done

    def _score_isolating(
        self, rows: Sequence[Any]
    ) -> tuple[list[tuple[Any, Scores]], list[tuple[Any, ClassifierError]]]:
        """Score ``rows``; a failing batch of several is split in halves and retried (recursively),
        so one bad text fails alone and the others get scored. Returns (scored, failed) rows."""
        try:
            return list(zip(rows, self._score(rows), strict=True)), []
        except ClassifierError as exc:
            if len(rows) == 1:
                return [], [(rows[0], exc)]
            log.debug("classifier failed on a batch of %d mentions, splitting it: %s", len(rows), exc)
        mid = len(rows) // 2
        scored, failed = self._score_isolating(rows[:mid])
        more_scored, more_failed = self._score_isolating(rows[mid:])
        return scored + more_scored, failed + more_failed

    def _finish(
        self,
        session: Session,
        scored: list[tuple[Any, Scores]],
        failed: list[tuple[Any, ClassifierError]],
        now: datetime,
    ) -> tuple[int, ClassifierError | None]:
        """Store what was scored and count/reschedule what failed.

        Returns how many were scored, and the error for the caller to raise (after committing) when
        nothing was: the classifier itself is failing, so its burst stops and the backoff applies.
        """
        if failed and not scored:  # one failure for the whole batch, as without splitting
            exc = failed[0][1]
            self._record_failure(session, [r.id for r, _ in failed], exc, now)
            return 0, exc
        for row, exc in failed:  # only the mentions that fail on their own are counted and retried
            self._record_failure(session, [row.id], exc, now)
        if scored:
            self._store(session, [r for r, _ in scored], [s for _, s in scored], now)
        return len(scored), None

    def _score(self, rows: Sequence[Any]) -> list[Scores]:
        texts = [classify_text(r.title, r.text) for r in rows]
        languages = [r.language for r in rows]
        started = time.perf_counter()
        try:
            scores = self.classifier.classify(texts, languages)
        except ClassifierError:
            raise
        except Exception as exc:
            raise ClassifierError(f"{type(exc).__name__}: {exc}") from exc
        if len(scores) != len(rows):
            raise ClassifierError(f"classifier returned {len(scores)} scores for {len(rows)} texts")
        self.metrics.classify_seconds.observe(time.perf_counter() - started)
        return scores

    def _store(self, session: Session, rows: Sequence[Any], scores: Sequence[Scores], now: datetime) -> None:
        for row, score in zip(rows, scores, strict=True):
            insert_ignore(
                session,
                models.Score.__table__,
                {
                    "mention_id": row.id,
                    "sentiment": score.sentiment,
                    "p_negative": score.p_negative,
                    "p_neutral": score.p_neutral,
                    "p_positive": score.p_positive,
                    "complaint": score.complaint,
                    "severity": score.severity,
                    "language": score.language,
                    "model": score.model,
                    "praise_threshold": calibrated_praise_threshold(self.classifier, score.language),
                    "scored_at": now,
                },
            )
            self.metrics.classified.labels(score.model).inc()
        session.execute(
            update(models.Mention)
            .where(models.Mention.id.in_([r.id for r in rows]), models.Mention.classify_state == "pending")
            .values(classify_state="scored", classify_error=None)
        )

    def _record_failure(self, session: Session, ids: list[int], exc: Exception, now: datetime) -> None:
        self.metrics.classify_errors.labels(type(exc).__name__).inc()
        attempts = (
            session.execute(
                select(func.max(models.Mention.classify_attempts)).where(models.Mention.id.in_(ids))
            ).scalar()
            or 0
        ) + 1
        delay = min(3600.0, 5.0 * 2 ** (attempts - 1))
        parked = attempts >= self.max_attempts
        session.execute(
            update(models.Mention)
            .where(models.Mention.id.in_(ids))
            .values(
                classify_attempts=models.Mention.classify_attempts + 1,
                classify_error=str(exc)[:1000],
                next_classify_at=now + timedelta(seconds=delay),
                classify_state="failed" if parked else "pending",
            )
        )
        log.error(
            "classifier failed on a batch of %d mentions (attempt %d/%d): %s%s",
            len(ids),
            attempts,
            self.max_attempts,
            exc,
            "; parked as failed" if parked else f"; retrying in {delay:.0f}s",
        )


def classify_text(title: str | None, text: str) -> str:
    """Text given to the classifier: the body, with a title in front when the body lacks it."""
    if title and not text.startswith(title):
        return f"{title}. {text}"
    return text
